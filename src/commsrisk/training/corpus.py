"""Build the seed corpus from the hand-written messages in data/raw: fill PII, augment, write.

Hand-written messages carry placeholders such as ``{{IBAN}}`` instead of identifiers, because
check digits are computed, not written: Faker fills them with valid values in each message's
local format (IBAN mod-97, Luhn cards, GB 11643 resident ids, ISIN check digits we compute).
A documented share of messages then gets one meaning-preserving variant (PII swap, typos,
code-switching, chat formatting). A variant keeps its source's conversation id, so it always
lands in the same split as its source and never inflates held-out scores.
"""

from __future__ import annotations

import json
import random
import re
import string
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from faker import Faker

from commsrisk.errors import InvalidInputError
from commsrisk.nlp.checksums import isin_check_digit
from commsrisk.schema import RISKS

PLACEHOLDER = re.compile(r"\{\{([A-Z_]+)\}\}")
LOCALES: dict[str, tuple[str, ...]] = {
    "en": ("en_US", "en_GB"),
    "zh": ("zh_CN",),
    "es": ("es_ES", "es_MX"),
    "de": ("de_DE", "de_AT", "de_CH"),
    "fr": ("fr_FR", "fr_BE", "fr_CH"),
    "ja": ("ja_JP",),
}
IBAN_LOCALES = ("de_DE", "fr_FR", "es_ES", "en_GB", "nl_NL", "it_IT")
WORK_DOMAINS = ("harbourbank.com", "northgate-capital.com", "meridian-am.co.uk", "kestrel-sec.com", "huaxin-sec.cn")
SIGN_OFFS: dict[str, tuple[str, ...]] = {
    "en": ("\n\nSent from my iPhone", "\n\n-- \nSent from Outlook for Android", " 👍", " 🙏"),
    "zh": ("\n\n发自我的iPhone", " 🙏", "[抱拳]", " 谢谢"),
    "es": ("\n\nEnviado desde mi iPhone", " 👍", " saludos"),
    "de": ("\n\nVon meinem iPhone gesendet", " 👍", " VG"),
    "fr": ("\n\nEnvoyé de mon iPhone", " 👍", " bonne journée"),
    "ja": ("\n\niPhoneから送信", " 🙇", "よろしくお願いします"),
}
CODE_SWITCH: dict[str, dict[str, str]] = {
    "zh": {
        "客户": "client",
        "合规": "compliance",
        "交易": "trade",
        "报价": "quote",
        "会议": "meeting",
        "项目": "project",
        "老板": "boss",
        "截图": "screenshot",
        "邮件": "email",
        "收益": "return",
    },
    "ja": {"顧客": "client", "コンプライアンス": "compliance", "取引": "deal", "会議": "meeting", "資料": "deck"},
    "es": {"cliente": "client", "reunión": "meeting", "cumplimiento": "compliance", "correo": "email"},
    "de": {"Kunde": "client", "Besprechung": "meeting", "Kunden": "clients", "Unterlagen": "deck"},
    "fr": {"client": "client", "réunion": "meeting", "conformité": "compliance", "dossier": "deal"},
}


class PiiFaker:
    """Fills placeholders with realistic fake values for one message's language."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.fakers = {loc: Faker(loc) for locs in LOCALES.values() for loc in locs}
        for loc in IBAN_LOCALES:
            self.fakers.setdefault(loc, Faker(loc))
        for i, faker in enumerate(self.fakers.values()):
            faker.seed_instance(seed + i)

    def _faker(self, lang: str) -> Faker:
        return self.fakers[self.rng.choice(LOCALES.get(lang, ("en_US",)))]

    def value(self, kind: str, lang: str) -> str:
        """A fake value for a placeholder kind; unknown kinds are an error."""
        makers: dict[str, Callable[[], str]] = {
            "IBAN": lambda: self._iban(),
            "CARD": lambda: self._card(),
            "SWIFT": lambda: self.fakers["en_GB"].swift(length=self.rng.choice((8, 11))),
            "ISIN": lambda: self._isin(),
            "ACCOUNT": lambda: self._account(lang),
            "CN_RESIDENT_ID": lambda: self.fakers["zh_CN"].ssn(),
            "CN_MOBILE": lambda: self.fakers["zh_CN"].phone_number(),
            "PHONE": lambda: self._faker(lang).phone_number(),
            "EMAIL": lambda: self._work_email(lang),
            "PERSONAL_EMAIL": lambda: self._personal_email(lang),
            "US_SSN": lambda: self.fakers["en_US"].ssn(),
            "PASSPORT": lambda: self._faker(lang).passport_number(),
            "DOB": lambda: (
                self._faker(lang)
                .date_of_birth(minimum_age=20, maximum_age=85)
                .strftime("%Y年%m月%d日" if lang in ("zh", "ja") else ("%m/%d/%Y" if lang == "en" else "%d.%m.%Y"))
            ),
        }
        if kind not in makers:
            raise InvalidInputError(f"unknown placeholder {{{{{kind}}}}}; known: {sorted(makers)}")
        return makers[kind]()

    def _iban(self) -> str:
        iban = self.fakers[self.rng.choice(IBAN_LOCALES)].iban()
        if self.rng.random() < 0.4:
            iban = " ".join(iban[i : i + 4] for i in range(0, len(iban), 4))
        return iban

    def _card(self) -> str:
        number = self.fakers["en_US"].credit_card_number(card_type=self.rng.choice(("visa16", "mastercard", "amex")))
        if self.rng.random() < 0.5 and len(number) == 16:
            number = " ".join(number[i : i + 4] for i in range(0, 16, 4))
        return number

    def _isin(self) -> str:
        body = self.rng.choice(("US", "DE", "FR", "GB", "CN", "JP", "ES")) + "".join(
            self.rng.choice(string.digits + string.ascii_uppercase[:6]) for _ in range(9)
        )
        return body + isin_check_digit(body)

    def _account(self, lang: str) -> str:
        length = {"zh": self.rng.choice((16, 19)), "ja": 7, "en": self.rng.choice((8, 10, 12))}.get(lang, 10)
        return "".join(self.rng.choice(string.digits) for _ in range(length))

    def _work_email(self, lang: str) -> str:
        faker = self._faker(lang if lang != "zh" else "en")
        first, last = faker.first_name(), faker.last_name()
        if lang in ("zh", "ja"):
            first, last = self.fakers["en_US"].first_name(), self.fakers["en_US"].last_name()
        local = re.sub(r"[^a-z.]", "", f"{first}.{last}".lower()) or "desk"
        return f"{local}@{self.rng.choice(WORK_DOMAINS)}"

    def _personal_email(self, lang: str) -> str:
        if lang == "zh":
            return f"{self.rng.randint(10_000_000, 2_999_999_999)}@{self.rng.choice(('qq.com', '163.com', '126.com'))}"
        return self._faker(lang).free_email()

    def fill(self, text: str, lang: str) -> str:
        """Replace every placeholder in `text` with a fresh fake value."""
        return PLACEHOLDER.sub(lambda m: self.value(m.group(1), lang), text)


def _typos(text: str, rng: random.Random) -> str:
    """1-3 keyboard slips in words of letters; placeholders stay intact."""
    words = text.split(" ")
    candidates = [i for i, w in enumerate(words) if len(w) > 3 and w.isalpha()]
    for i in rng.sample(candidates, k=min(len(candidates), rng.randint(1, 3))):
        w = words[i]
        k = rng.randrange(1, len(w) - 1)
        op = rng.choice(("swap", "drop", "double"))
        words[i] = (
            w[: k - 1] + w[k] + w[k - 1] + w[k + 1 :]
            if op == "swap"
            else w[:k] + w[k + 1 :]
            if op == "drop"
            else w[:k] + w[k] + w[k:]
        )
    out = " ".join(words)
    return out.lower() if rng.random() < 0.3 else out


def _code_switch(text: str, lang: str, rng: random.Random) -> str | None:
    table = CODE_SWITCH.get(lang, {})
    hits = [word for word in table if word in text]
    if not hits:
        return None
    for word in rng.sample(hits, k=min(len(hits), 2)):
        text = text.replace(word, table[word], 1)
    return text


FULL_TO_HALF = str.maketrans("，。！？：；（）", ",.!?:;()")
HALF_TO_FULL = str.maketrans(",.!?:;", "，。！？：；")


def _punctuation(text: str, lang: str, rng: random.Random) -> str:
    """Punctuation as people really type it: CJK full/half-width swapped or dropped, Latin stripped."""
    if lang in ("zh", "ja"):
        choice = rng.random()
        if choice < 0.4:
            return text.translate(FULL_TO_HALF)
        if choice < 0.7:
            return re.sub(r"[，。！？、]", " ", text).strip()
        return text.translate(HALF_TO_FULL) if re.search(r"[,.!?]", text) else text.rstrip("。！") + "！！"
    stripped = re.sub(r"[.,!?;:'\"]", "", text)
    return stripped.lower() if rng.random() < 0.5 else stripped


def _chat_format(text: str, lang: str, rng: random.Random) -> str:
    text = text.rstrip("。.!！")
    return text + rng.choice(SIGN_OFFS.get(lang, SIGN_OFFS["en"]))


WRITER_KEYS: dict[str, str] = {
    "id": "message_id",
    "conv": "conversation_id",
    "mix": "mixed_with",
    "ch": "channel",
    "bu": "business_unit",
    "ext": "external",
    "L": "leakage",
    "M": "misconduct",
    "O": "off_channel",
    "hard": "hard_case",
    "reg": "register",
    "typ": "typology",
    "pii": "pii_types",
}
"""The writers' short keys (data/raw/written_v2) and the corpus column each one fills."""

HARD_CASES: tuple[str, ...] = ("", "benign_alarming", "covert_risk")
REGISTERS: tuple[str, ...] = ("chat", "slang", "voice", "email", "long_email", "forward")
TYPOLOGY_RISK: dict[str, tuple[str, int]] = {
    "leak.": ("leakage", 1),
    "mis.": ("misconduct", 1),
    "off.": ("off_channel", 1),
    "not_leak.": ("leakage", 0),
    "not_mis.": ("misconduct", 0),
    "not_off.": ("off_channel", 0),
}
"""Typology code prefixes and the label they imply (data/raw/written_v2/BRIEFS.md lists the codes)."""


def normalise_written(row: dict[str, Any], writer: str) -> dict[str, Any]:
    """One written row in the corpus schema, whichever key style its writer used."""
    out = {WRITER_KEYS.get(key, key): value for key, value in row.items()}
    out.setdefault("writer", writer)
    out.setdefault("mixed_with", "")
    out.setdefault("hard_case", "")
    out.setdefault("register", "")
    out.setdefault("variety", "")
    out["typology"] = list(out.get("typology") or [])
    out["pii_types"] = list(out.get("pii_types") or [])
    out.setdefault("conversation_id", out.get("message_id"))
    return out


def label_problems(row: dict[str, Any]) -> list[str]:
    """Where a written row breaks the label schema (values, hard-case tag, typology vs labels)."""
    problems = [f"{risk} is {row.get(risk)!r}, not 0/1" for risk in RISKS if row.get(risk) not in (0, 1)]
    if row.get("hard_case", "") not in HARD_CASES:
        problems.append(f"hard_case {row.get('hard_case')!r} not in {HARD_CASES}")
    if row.get("hard_case") == "covert_risk" and not any(row.get(risk) == 1 for risk in RISKS):
        problems.append("covert_risk without any risk label")
    for code in row.get("typology", []):
        for prefix, (risk, value) in TYPOLOGY_RISK.items():
            if code.startswith(prefix) and row.get(risk) != value:
                problems.append(f"typology {code} implies {risk}={value}")
    return problems


def read_written(paths: Iterable[Path]) -> list[dict[str, Any]]:
    """Read the hand-written files; a malformed line stops the build, naming file and line.

    A file's writer is the name of its folder (``t1``, ``d2``, ...); the first wave's folder
    ``written`` is writer ``v1``.
    """
    rows: list[dict[str, Any]] = []
    for path in sorted(paths):
        writer = "v1" if path.parent.name == "written" else path.parent.name
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                row = normalise_written(json.loads(line), writer)
            except json.JSONDecodeError as err:
                raise InvalidInputError(f"{path.name}:{number}: invalid JSON ({err.msg})") from err
            missing = [k for k in ("message_id", "text", "lang", *RISKS) if k not in row]
            if missing:
                raise InvalidInputError(f"{path.name}:{number}: missing {missing}")
            rows.append(row)
    return rows


def written_files(raw_dirs: Iterable[Path]) -> list[Path]:
    """Every JSONL file below the given folders (one folder per writer in written_v2)."""
    return sorted(path for raw in raw_dirs for path in raw.rglob("*.jsonl"))


def apply_label_audit(rows: list[dict[str, Any]], audit: Path | None) -> dict[str, int]:
    """Apply the label audit's changes (raw files stay as written); returns the count per rule.

    Raises:
        InvalidInputError: a change names an unknown message or an old value that does not match.
    """
    if audit is None or not audit.is_file():
        return {}
    by_id = {row["message_id"]: row for row in rows}
    counts: dict[str, int] = {}
    for number, line in enumerate(audit.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        change = json.loads(line)
        row = by_id.get(change["message_id"])
        if row is None or change["label"] not in RISKS or int(row[change["label"]]) != int(change["old"]):
            raise InvalidInputError(f"{audit.name}:{number}: change does not match the written data")
        row[change["label"]] = int(change["new"])
        row.setdefault("audit_rules", []).append(change["rule"])
        counts[change["rule"]] = counts.get(change["rule"], 0) + 1
    return counts


def _variant(template: str, lang: str, method: str, faker: PiiFaker, rng: random.Random) -> str | None:
    """One meaning-preserving variant of a written message, or None if the method does not apply."""
    if method == "pii_swap":
        return faker.fill(template, lang)
    if method == "typos":
        return _typos(faker.fill(template, lang), rng)
    if method == "code_switch":
        return _code_switch(faker.fill(template, lang), lang, rng)
    if method == "punctuation":
        return _punctuation(faker.fill(template, lang), lang, rng)
    return _chat_format(faker.fill(template, lang), lang, rng)


def build_corpus(
    raw_dirs: Sequence[Path],
    *,
    seed: int = 7,
    augment_share: float = 1.0,
    positive_augment_share: float = 2.0,
    audit: Path | None = None,
) -> list[dict[str, Any]]:
    """Filled written messages plus variants, in a stable order.

    Each message gets about `augment_share` variants (`positive_augment_share` if it carries a
    risk label, which oversamples the rarer positives), each by a different method; a variant
    equal to a text already in the corpus is dropped. The label audit is applied first.
    """
    rng = random.Random(seed)
    faker = PiiFaker(seed)
    written = read_written(written_files(raw_dirs))
    apply_label_audit(written, audit)
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for row in written:
        template = row["text"]
        base = {**row, "text": faker.fill(template, row["lang"]), "origin": "written", "source_id": row["message_id"]}
        out.append(base)
        seen.add(base["text"])
        methods = ["chat_format", "punctuation"] + (["typos"] if row["lang"] in ("en", "es", "de", "fr") else [])
        if PLACEHOLDER.search(template):
            methods.append("pii_swap")
        if row["lang"] in CODE_SWITCH and not row.get("mixed_with"):
            methods.append("code_switch")
        share = positive_augment_share if any(int(row[risk]) for risk in RISKS) else augment_share
        count = int(share) + (1 if rng.random() < share - int(share) else 0)
        for method in rng.sample(methods, k=min(count, len(methods))):
            text = _variant(template, row["lang"], method, faker, rng)
            if text is None or text in seen:
                continue
            seen.add(text)
            variant = {**row, "text": text, "origin": f"augmented:{method}", "source_id": row["message_id"]}
            variant["message_id"] = f"{row['message_id']}-{method}"
            if method == "code_switch":
                variant["mixed_with"] = "en"
            out.append(variant)
    return out


def build_eval_set(raw_dirs: Sequence[Path], *, seed: int = 11) -> list[dict[str, Any]]:
    """The out-of-distribution dev set: written messages with placeholders filled, no variants."""
    faker = PiiFaker(seed)
    rows = read_written(written_files(raw_dirs))
    return [{**row, "text": faker.fill(row["text"], row["lang"]), "origin": "written"} for row in rows]


def write_jsonl(rows: Iterable[dict[str, Any]], path: Path) -> int:
    """Write rows as UTF-8 JSON Lines; returns the count."""
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with path.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
            count += 1
    return count
