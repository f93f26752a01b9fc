"""The two baselines every evaluation reports beside the fine-tuned model.

- `KeywordLexicon`: what legacy surveillance runs - a message is flagged for a risk when it
  contains one of that risk's keywords. The lists are written by hand (no library ships a
  multilingual compliance lexicon) in the six supported languages.
- `TfidfLogReg`: character n-gram TF-IDF with one logistic regression per risk (scikit-learn);
  character n-grams work for Chinese and Japanese, which have no spaces.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.multiclass import OneVsRestClassifier
from sklearn.pipeline import Pipeline

from commsrisk.schema import RISKS

LEXICON: dict[str, tuple[str, ...]] = {
    "leakage": (
        "confidential",
        "client list",
        "password",
        "passport",
        "social security",
        "ssn",
        "account number",
        "date of birth",
        "personal email",
        "gmail",
        "hotmail",
        "forward to my",
        "send to my",
        "attached list",
        "身份证",
        "客户名单",
        "密码",
        "客户资料",
        "银行卡号",
        "发我私人邮箱",
        "qq邮箱",
        "confidencial",
        "contraseña",
        "datos del cliente",
        "lista de clientes",
        "vertraulich",
        "passwort",
        "kundenliste",
        "kundendaten",
        "confidentiel",
        "mot de passe",
        "liste des clients",
        "données client",
        "機密",
        "顧客リスト",
        "パスワード",
        "個人情報",
    ),
    "misconduct": (
        "insider",
        "inside information",
        "guarantee",
        "guaranteed",
        "front run",
        "front-run",
        "spoof",
        "pump",
        "manipulat",
        "kickback",
        "bribe",
        "don't tell compliance",
        "off the record",
        "backdate",
        "fix the price",
        "mark the close",
        "内幕",
        "保本",
        "保收益",
        "回扣",
        "拉升",
        "坐庄",
        "对倒",
        "别告诉合规",
        "操纵",
        "información privilegiada",
        "garantizado",
        "soborno",
        "comisión por debajo",
        "insiderinformation",
        "garantiert",
        "schmiergeld",
        "bestechung",
        "délit d'initié",
        "garanti",
        "pot-de-vin",
        "manipulation",
        "インサイダー",
        "元本保証",
        "賄賂",
        "相場操縦",
    ),
    "off_channel": (
        "whatsapp",
        "signal",
        "telegram",
        "wechat",
        "personal phone",
        "my cell",
        "my mobile",
        "delete",
        "disappearing",
        "not on the recorded line",
        "call me on",
        "微信",
        "私聊",
        "小号",
        "删除",
        "撤回",
        "阅后即焚",
        "电话说",
        "borra",
        "borrar",
        "mi celular",
        "mi móvil",
        "löschen",
        "privathandy",
        "handy",
        "supprime",
        "effacer",
        "mon portable",
        "perso",
        "削除",
        "LINE",
        "個人の携帯",
    ),
}


class KeywordLexicon:
    """Flags a risk when any of its keywords occurs (case-insensitive); scores are 0 or 1."""

    def __init__(self, lexicon: dict[str, tuple[str, ...]] | None = None) -> None:
        words = lexicon or LEXICON
        self._patterns = [
            re.compile("|".join(re.escape(word) for word in words[risk]), re.IGNORECASE) for risk in RISKS
        ]

    def fit(self, texts: Sequence[str], labels: np.ndarray) -> KeywordLexicon:
        """Nothing to learn: a lexicon is written, not trained."""
        return self

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """1.0 where a keyword of the risk occurs, else 0.0."""
        return np.array(
            [[1.0 if pattern.search(text) else 0.0 for pattern in self._patterns] for text in texts], dtype=np.float64
        )


class TfidfLogReg:
    """Character 2-4-gram TF-IDF + one balanced logistic regression per risk."""

    def __init__(self, seed: int = 0) -> None:
        self.pipeline = Pipeline(
            [
                (
                    "tfidf",
                    TfidfVectorizer(
                        analyzer="char_wb", ngram_range=(2, 4), min_df=2, sublinear_tf=True, max_features=200_000
                    ),
                ),
                (
                    "clf",
                    OneVsRestClassifier(
                        LogisticRegression(C=4.0, class_weight="balanced", max_iter=2000, random_state=seed)
                    ),
                ),
            ]
        )

    def fit(self, texts: Sequence[str], labels: np.ndarray) -> TfidfLogReg:
        """Fit on texts and their (n, len(RISKS)) 0/1 labels."""
        self.pipeline.fit(list(texts), labels)
        return self

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """P(risk) per text, shape (n, len(RISKS))."""
        return np.asarray(self.pipeline.predict_proba(list(texts)), dtype=np.float64)
