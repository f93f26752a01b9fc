"""Chinese person names from the shared parse: our character-level NER, or jieba's POS tags (nr).

A name is kept only when it is 2-4 characters long and starts with a Chinese surname: the
character NER's false names are single characters and ordinary words (操作, 刚刚, 兄弟).
"""

from __future__ import annotations

from presidio_analyzer import RecognizerResult
from presidio_analyzer.nlp_engine import NlpArtifacts

from commsrisk.nlp.recognizers.base import CommsriskEntityRecognizer

SCORE = 0.45
SURNAMES = frozenset(
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟"
    "谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤常温康施文牛樊葛邢"
    "安齐易乔伍庞颜倪庄聂章鲁岳翟殷詹申欧耿关兰焦俞左柳甘祝包宁尚符舒阮柯纪梅童凌毕单季裴霍涂成苗谷盛曲翁冉骆蓝路"
    "游辛靳管柴蒙鲍华喻祁蒲房滕屈饶解牟艾尤阳时穆农司卓古吉缪简车项连芦麦褚娄窦戚岑景党宫费卜冷晏席卫米柏宗瞿桂全"
    "佟应臧闵苟邬边卞姬师和仇栾隋商刁沙荣巫寇桑郎甄丛仲虞敖巩明佘池查麻苑迟邝官封谈匡鞠惠荆乐冀郁胥南班储原栗燕楚"
    "鄢劳谌奚皮粟冼蔺楼盘满闻位厉伊仝区郜海阚花权强帅屠豆朴盖练廉禹井祖漆巴丰支卿国狄平计索宣晋相初门云容敬来扈晁"
    "芮都普阙浦戈伏鹿薄邸雍辜羊阿乌母裘亓修邰赫杭况那宿鲜印逯隆茹诸战慕危玉银亢嵇公哈湛宾戎勾茅利於呼居揭干但尉冶"
    "斯元束檀衣信展阴昝智幸奉植衡富尧闭由傅洪萧赖阎"
)
"""About 400 single-character surnames, which between them cover nearly every Chinese name."""
COMPOUND_SURNAMES = ("欧阳", "司马", "上官", "诸葛", "东方", "皇甫", "尉迟", "公孙", "慕容", "长孙", "宇文", "司徒",
                     "夏侯", "令狐", "端木", "独孤", "南宫", "西门", "轩辕", "呼延")  # fmt: skip


def starts_with_surname(word: str) -> bool:
    """Whether a word could be a Chinese full name: a surname, then a given name."""
    return word[:1] in SURNAMES or word[:2] in COMPOUND_SURNAMES


class CnPersonRecognizer(CommsriskEntityRecognizer):
    """PERSON for the parse's names (character NER or jieba tags): 2-4 characters, from a surname."""

    ENTITIES = ["PERSON"]
    COUNTRY_CODE = "cn"

    def analyze(
        self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None
    ) -> list[RecognizerResult]:
        """PERSON results from the doc's PERSON entities (jieba nr tags)."""
        if nlp_artifacts is None or nlp_artifacts.tokens is None or "PERSON" not in entities:
            return []
        return [
            RecognizerResult("PERSON", ent.start_char, ent.end_char, SCORE)
            for ent in nlp_artifacts.tokens.ents
            if ent.label_ == "PERSON" and 2 <= len(ent.text) <= 4 and starts_with_surname(ent.text)
        ]
