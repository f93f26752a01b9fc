"""Street addresses (LOCATION PII) in the formats of our languages: a street word and a number.

A city alone in market talk is an entity, not PII; what makes an address personal data is a street
with its house number (or a Chinese/Japanese address down to road, block or 丁目). Every pattern
needs a street word of its language *and* a number, which keeps prices, dates and tickers out.
Patterns of all languages run for every message language (a Spanish address in an English e-mail
is still an address). Budget: < 1 ms per message.
"""

from __future__ import annotations

from presidio_analyzer import Pattern

from commsrisk.nlp.recognizers.base import CommsriskPatternRecognizer
from commsrisk.nlp.recognizers.boundaries import END, START

SCORE = 0.6

_CAP = r"[A-ZÀ-ÖØ-Þ][\wÀ-ÿ'’.-]*"
"""A capitalised word (names of streets), accents and apostrophes included."""
_CITY = r"[A-ZÀ-ÖØ-Þ][a-zß-öø-ÿ'’-]*[a-zß-öø-ÿ]"
"""A town's name: a capitalised word of letters (no digits, no trailing full stop)."""
# fmt: off
EN_STREET_SUFFIXES: tuple[str, ...] = (
    "Embankment", "Expressway", "Extensions", "Throughway", "Trafficway", "Crossroad", "Esplanade", "Extension",
    "Junctions", "Mountains", "Stravenue", "Underpass", "Broadway", "Causeway", "Crescent", "Crossing", "Junction",
    "Motorway", "Mountain", "Overpass", "Parkways", "Turnpike", "Villages", "Centers", "Circles", "Corners",
    "Estates", "Freeway", "Gardens", "Gateway", "Harbors", "Heights", "Highway", "Islands", "Landing", "Meadows",
    "Mission", "Orchard", "Parkway", "Passage", "Prairie", "Springs", "Squares", "Station", "Streets", "Terrace",
    "Valleys", "Viaduct", "Village", "Avenue", "Branch", "Bridge", "Brooks", "Bypass", "Canyon", "Center", "Circle",
    "Cliffs", "Common", "Corner", "Course", "Courts", "Divide", "Drives", "Estate", "Fields", "Forest", "Forges",
    "Garden", "Greens", "Groves", "Harbor", "Hollow", "Island", "Knolls", "Lights", "Manors", "Meadow", "Parade",
    "Plains", "Points", "Radial", "Rapids", "Ridges", "Shoals", "Shores", "Skyway", "Spring", "Square", "Stream",
    "Street", "Summit", "Tunnel", "Unions", "Valley", "Alley", "Brook", "Burgs", "Cliff", "Close", "Court", "Coves",
    "Creek", "Crest", "Curve", "Drive", "Falls", "Ferry", "Field", "Flats", "Fords", "Forge", "Forks", "Glens",
    "Green", "Grove", "Haven", "Hills", "Inlet", "Knoll", "Lakes", "Light", "Locks", "Lodge", "Manor", "Mills",
    "Mount", "Parks", "Pines", "Place", "Plain", "Plaza", "Point", "Ports", "Ranch", "Rapid", "Ridge", "River",
    "Roads", "Route", "Shoal", "Shore", "Spurs", "Trace", "Track", "Trail", "Union", "Views", "Ville", "Vista",
    "Walks", "Wells", "Wharf", "Blvd", "Burg", "Camp", "Cape", "Club", "Cove", "Dale", "Fall", "Flat", "Ford",
    "Fork", "Fort", "Glen", "Hill", "Isle", "Keys", "Lake", "Land", "Lane", "Loaf", "Lock", "Loop", "Mall", "Mews",
    "Mill", "Neck", "Oval", "Park", "Pass", "Path", "Pike", "Pine", "Pkwy", "Port", "Ramp", "Rest", "Rise", "Road",
    "Spur", "View", "Walk", "Wall", "Ways", "Well", "Ave", "Cir", "Dam", "Hwy", "Key", "Row", "Rue", "Run", "Ter",
    "Via", "Way", "Ct", "Dr", "Ln", "Pl", "Rd", "Sq", "St",
)
# fmt: on
"""USPS Publication 28 (appendix C1) street suffixes, with British ones (Close, Rise, Parade, ...) and
the common abbreviations; longest first so the alternation takes the whole word."""
_EN_SUFFIX = r"(?:" + "|".join(EN_STREET_SUFFIXES) + r")\.?"
_EN_UNIT = r"(?:(?:Flat|Studio|Apt\.?|Apartment|Suite|Unit)\s+\w{1,5}[,\n]?\s*)"
_UK_POSTCODE = r"[A-Z]{1,2}\d[A-Z\d]?\s?\d[A-Z]{2}"
_DE_STREET = (
    r"(?:[A-ZÄÖÜ][\wäöüß.-]*(?:straße|strasse|str\.|weg|gasse|platz|allee|ring|damm|ufer|chaussee|steig|pfad|"
    r"gürtel|markt|graben|berg|hof|kai|promenade|zeile|wall)|(?:[A-ZÄÖÜ][\wäöüß]*-)+(?:Straße|Strasse|Weg|Gasse|"
    r"Platz|Allee|Ring|Damm|Ufer|Steig|Pfad|Markt|Promenade)|(?:[A-ZÄÖÜ][\wäöüß-]*(?:er|e)\s+)"
    r"(?:Straße|Strasse|Str\.|Weg|Gasse|Platz|Allee|Ring|Damm|Ufer|Chaussee)|(?:Am|An der|Auf dem|Im|In der|Zum|Zur)"
    r"\s+[A-ZÄÖÜ][\wäöüß-]+)"
)
_FR_STREET = (
    r"(?:rue|avenue|av\.|boulevard|bd|place|chemin|allée|impasse|quai|route|cours|square|passage|esplanade|"
    r"faubourg|rond-point|voie|sentier|Rue|Avenue|Boulevard|Place|Chemin|Allée|Impasse|Quai|Route|Cours)"
)
_FR_OF = r"(?:\s+(?:de\s+la|de\s+l['’]|du|des|de|d['’]|la|le|les))?"
_ES_STREET = (
    r"(?:Calle|C/|Avenida|Avda\.?|Av\.|Paseo|Plaza|Pza\.|Camino|Carretera|Ctra\.|Ronda|Travesía|Calzada|Cerrada|"
    r"Circuito|Privada|Prolongación|Andador|Callejón|Cañada|Continuación|Diagonal|Eje vial|Pasaje|Periférico|"
    r"Retorno|Viaducto|Boulevard|Bulevar|Glorieta|Urbanización|Vía|Alameda|Rambla|Cuesta|Acceso|Corredor|"
    r"Peatonal|Ampliación|Callejon|Circunvalación|Sector|Via|Pasadizo|Vial|C\.)"
)
_ES_OF = r"(?:\s+(?:de\s+la|de\s+los|de\s+las|del|de|la|el|los|las))?"
_ES_TAIL = (
    r"(?:\s*,?\s*(?:Edif\.|Edificio|Interior|Int\.|Depto\.|Dpto\.|Apt\.|Piso|piso|Puerta|puerta|Esc\.|Local|nº|No\.)"
    r"\s*\w{1,5}){0,3}"
)
_TOWN_STATE_ZIP = (
    r"(?:,\s*"
    + _CITY
    + r"(?:\s+(?:de|del|la|las|los|el|y)?\s*"
    + _CITY
    + r"){0,4}(?:\s+(?:de\s+la|los|las|de)\s+"
    + _CITY
    + r")?(?:,\s*[A-Z]{2,4})?\s+\d{5}(?:-\d{4})?)?"
)
"""Mexican and US endings: ", San Marcela de la Montaña, QRO 26488-1186" (town, state, postcode)."""
_POSTCODE_CITY = r"(?:,?\s+(?:[A-Z]{1,3}-)?\d{4,5}(?:-\d{4})?\s+" + _CITY + r"(?:[\s-]+" + _CITY + r"){0,2})?"
_CJK = r"[\u4e00-\u9fff]"
_ZH_ADDRESS = (
    # the first unit is a province or city name (2-3 characters), so the words before it stay out
    r"(?![的是在到址于往住寄给和与])(?:" + _CJK + r"{2,3}(?:省|自治区|特别行政区|市)|" + _CJK + r"{2,4}(?:区|县))"
    r"(?:" + _CJK + r"{1,7}?(?:市|区|县|镇|乡))*" + _CJK + r"{0,10}?"
    r"(?:路|街|大道|道|巷|弄|胡同|里)(?:[A-Za-z0-9０-９]{1,5}(?:号|座|栋|幢)(?:[A-Za-z0-9]{1,5}(?:室|楼|层|单元))?"
    r"|[A-Za-z]座)(?:\s?\d{6}(?![0-9]))?"
)
_JA_PREFECTURE = r"(?:東京都|北海道|大阪府|京都府|" + _CJK + r"{2,3}県)"
_JA_ADDRESS = (
    _JA_PREFECTURE + r"[\u4e00-\u9fff\u3040-\u30ffヶーＡ-Ｚａ-ｚ]{1,20}?"
    r"(?:(?:\d{1,3}|[０-９]{1,3})丁目(?:\d{1,4}番(?:地)?)?(?:\d{1,4}号?)?|\d{1,4}-\d{1,4}(?:-\d{1,4})?)"
    r"(?:[ 　][\u30a0-\u30ffー\u4e00-\u9fff]{2,12}\d{0,4})?"
)


class AddressRecognizer(CommsriskPatternRecognizer):
    """LOCATION: street addresses in English, German, French, Spanish, Chinese and Japanese formats."""

    ENTITY = "LOCATION"
    PATTERNS = [
        Pattern(
            "en: number + street + suffix",
            START + _EN_UNIT + r"?\d{1,5}[A-Za-z]?,?\s+(?:" + _CAP + r"\s+){1,3}" + _EN_SUFFIX
            + r"(?:\s+(?:Apt\.|Suite)\s+\w{1,5})?(?:,\s+" + _CITY + r"(?:\s+" + _CITY + r")?)?(?:,?\s+"
            + _UK_POSTCODE + r"|,?\s+[A-Z]{2}\s+\d{5})?" + END,
            SCORE,
        ),
        Pattern(
            "en: US military (PSC/Unit + Box + APO/FPO/DPO)",
            START + r"(?:PSC|Unit|USNS|USNV|USS)\s+\w+,?\s+Box\s+\d+,\s+(?:APO|FPO|DPO)\s+A[AEP]\s+\d{5}" + END,
            SCORE,
        ),
        Pattern("en: flat/studio + street", START + _EN_UNIT + r"(?:" + _CAP + r"\s+){1,3}" + _EN_SUFFIX + END, SCORE),
        Pattern(
            "de: street + number",
            START + _DE_STREET + r"\s+\d{1,4}[a-z]?(?:\s?[/-]\s?\d{1,4}[a-z]?)?" + _POSTCODE_CITY + END,
            SCORE,
        ),
        Pattern(
            "fr: number + street",
            START + r"\d{1,4}(?:\s?(?:bis|ter|b))?,?\s+" + _FR_STREET + _FR_OF + r"\s*" + _CAP
            + r"(?:[\s-]+" + _CAP + r"){0,3}" + _POSTCODE_CITY + END,
            SCORE,
        ),
        Pattern(
            "fr (Switzerland, Belgium): street + number",
            START + _FR_STREET + _FR_OF + r"\s*" + _CAP + r"(?:[\s-]+" + _CAP + r"){0,3},?\s+\d{1,4}[a-z]?"
            + _POSTCODE_CITY + END,
            SCORE,
        ),
        Pattern(
            "fr: street without number, with postcode",
            START + _FR_STREET + _FR_OF + r"\s*" + _CAP + r"(?:[\s-]" + _CAP + r"){0,2},?\s+\d{5}\s+" + _CAP + END,
            SCORE,
        ),
        Pattern(
            "es: street + number",
            START + _ES_STREET + _ES_OF + r"\s+" + _CAP + r"(?:\s+(?:(?:de|del|la|las|los|el|e|y)\s+)?"
            + _CAP + r"){0,6}"
            + r"\s*,?\s*(?:nº\s*|n\.º\s*|#\s*)?\d{1,5}[A-Za-z]?(?:\s\d{1,4})?" + _ES_TAIL + _TOWN_STATE_ZIP + END,
            SCORE,
        ),
        Pattern("zh: down to road and number", _ZH_ADDRESS, SCORE),
        Pattern("ja: prefecture down to 丁目 or block", _JA_ADDRESS, SCORE),
    ]  # fmt: skip
    CONTEXT = ["address", "live", "lives", "moved", "street"]
