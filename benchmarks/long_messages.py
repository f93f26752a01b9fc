"""Long messages: how a message over the classifier's max_length reaches it (classifier.tokens).

    .venv/bin/python benchmarks/long_messages.py                       # every way, on the dev set
    .venv/bin/python benchmarks/long_messages.py --ways head windows-64

Ways compared: "head" (cut at max_length), "head+tail-32" / "head+tail-64" (the start and the
last 32/64 tokens, tokens.encode), "windows-64" / "windows-128" (overlapping windows of 64/128
tokens, each risk taking its highest window, tokens.token_windows; the default).

The out-of-distribution dev set (data/eval/ood_dev/dev.jsonl) is scored by the whole pipeline
three ways for each of them: as it is (its 98 e-mails over 128 tokens are the real long
messages), with each message placed AFTER a long benign e-mail body ("ask at the end": the
risk is in the last lines) and BEFORE a long benign quoted thread and signature ("ask at the
start"). The benign paragraphs are written here (English, German, Chinese) and carry no risk,
so each message keeps its label. Macro-F1 at the policy's thresholds, and msg/s on the "ask at
the end" messages (all long) to show the cost. Writes benchmarks/results/long_messages.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

BODIES = {
    "en": (
        "Hi all, quick recap of this morning's desk meeting for those who dialled in late. Rates were "
        "broadly unchanged overnight, the curve flattened a little after the payrolls print and the "
        "front end is pricing roughly one cut by the spring. Credit was quiet, primary issuance light "
        "ahead of the holidays, and the usual names traded in small size. Facilities reminded us that "
        "the third floor kitchen is closed on Thursday for maintenance and the fire drill moves to "
        "Friday at ten. The offsite agenda is in the shared drive; please add your topics by Wednesday "
        "and confirm dietary requirements with Priya. Training: the annual conduct module is due by the "
        "end of the month, it takes about forty minutes. Holiday cover rota is attached, swap with each "
        "other directly and let me know once agreed. Thanks everyone for a solid quarter so far."
    ),
    "de": (
        "Hallo zusammen, kurze Zusammenfassung der heutigen Teamrunde für alle, die später dazukamen. "
        "Die Renditen blieben über Nacht weitgehend unverändert, die Kurve wurde nach den Arbeitsmarktdaten "
        "etwas flacher, und am kurzen Ende wird bis zum Frühjahr etwa eine Senkung eingepreist. Am "
        "Kreditmarkt war es ruhig, wenig Neuemissionen vor den Feiertagen. Die Haustechnik erinnert daran, "
        "dass die Küche im dritten Stock am Donnerstag wegen Wartung geschlossen ist und die Brandschutzübung "
        "auf Freitag um zehn verschoben wird. Die Agenda für den Workshop liegt im gemeinsamen Laufwerk; "
        "bitte tragt eure Themen bis Mittwoch ein. Die jährliche Schulung ist bis Monatsende fällig, sie "
        "dauert ungefähr vierzig Minuten. Der Urlaubsplan hängt an, tauscht bitte direkt untereinander."
    ),
    "zh": (
        "各位好,简单回顾一下今天早上的部门例会,供晚到的同事参考。隔夜利率基本持平,非农数据公布后曲线略有走平,"
        "市场预计春季前大约降息一次。信用市场比较平静,节前一级市场发行量不大,主要券种成交也比较零散。行政提醒大家,"
        "周四三楼茶水间因检修关闭,消防演习改到周五上午十点。团建的议程已经放在共享盘里,请大家周三前补充想讨论的议题,"
        "并把饮食要求告诉行政同事。年度培训课程请在月底前完成,大约需要四十分钟。假期值班表见附件,如需调班请直接互相沟通,"
        "确定后告诉我一声。感谢大家这个季度的努力。"
    ),
}
"""Benign e-mail bodies, written here: meeting notes, market colour, office logistics."""

THREADS = {
    "en": (
        "\n\nBest regards\nJordan\nAssociate | Global Markets\n\n-----Original Message-----\nFrom: Events Team\n"
        "Sent: Monday 09:12\nSubject: RE: offsite logistics\n\nThe coach leaves from the main entrance at 8:15 "
        "and returns by six. Lunch is provided, there is a vegetarian option, and the venue has parking for "
        "anyone driving. Please bring a laptop charger, the breakout rooms have screens but no spare cables. "
        "We will share the slides afterwards. If you cannot attend let your manager know by Friday so we can "
        "release the seat. Thanks, and looking forward to seeing everyone there."
    ),
    "de": (
        "\n\nViele Grüße\nJonas\nAnalyst | Kapitalmärkte\n\n-----Ursprüngliche Nachricht-----\nVon: Veranstaltungen\n"
        "Gesendet: Montag 09:12\nBetreff: AW: Workshop Organisation\n\nDer Bus fährt um 8:15 Uhr am Haupteingang "
        "ab und ist gegen achtzehn Uhr zurück. Mittagessen wird gestellt, es gibt eine vegetarische Option. Bitte "
        "bringt ein Ladegerät mit, in den Gruppenräumen gibt es Bildschirme, aber keine Kabel. Die Folien schicken "
        "wir danach herum. Wer nicht teilnehmen kann, sagt bitte bis Freitag Bescheid, damit wir den Platz freigeben."
    ),
    "zh": (
        "\n\n此致\n李明\n固定收益部\n\n-----原始邮件-----\n发件人: 行政部\n"
        "发送时间: 周一 09:12\n主题: 回复: 团建安排\n\n"
        "大巴早上八点十五分从大楼正门出发,傍晚六点前返回。午餐统一安排,有素食选项,场地可以停车。请自带笔记本电脑充电器,"
        "分组讨论室有屏幕但没有多余的线。会后我们会把资料发给大家。如果不能参加,请在周五前告诉直属领导,以便释放名额。"
        "谢谢大家,期待见面。"
    ),
}
"""Benign quoted threads and signatures that follow a short new text, written here."""


WAYS: dict[str, tuple[int, int]] = {
    "head": (0, 0),
    "head+tail-32": (0, 32),
    "head+tail-64": (0, 64),
    "windows-64": (64, 0),
    "windows-128": (128, 0),
}
"""Each way as (window_tokens, tail_tokens) of the RiskClassifier."""


def filler_language(lang: str) -> str:
    """The benign text's language for a message's: its own when written here, else English."""
    return lang if lang in BODIES else "en"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ways", nargs="+", choices=list(WAYS), default=list(WAYS), help="ways to compare")
    args = parser.parse_args()

    import numpy as np

    from commsrisk.scoring import build_scorer
    from commsrisk.settings import Settings
    from commsrisk.training.data import read_labeled_file
    from commsrisk.training.pipeline import frame_messages
    from commsrisk.training.scored_evaluation import evaluate_results, score_frame

    settings = Settings.load()
    labeled = read_labeled_file(settings.tracking.dev_set, limits=settings.limits)
    frame = labeled.frame.reset_index(drop=True)
    scorer = build_scorer(settings, classifier_location=str(settings.model.default_dir))
    classifier = scorer.classifier
    lengths = np.array([len(ids) for ids in classifier.tokenizer(list(frame["text"]), verbose=False)["input_ids"]])
    long_rows = lengths > classifier.max_length
    langs = frame["lang"].fillna("en").astype(str) if "lang" in frame else ["en"] * len(frame)
    pairs = list(zip(langs, frame["text"], strict=True))
    variants = {
        "as is": list(frame["text"]),
        "ask at the end": [BODIES[filler_language(lang)] + "\n\n" + text for lang, text in pairs],
        "ask at the start": [text + THREADS[filler_language(lang)] for lang, text in pairs],
    }
    report: dict[str, object] = {
        "messages": len(frame),
        "over_max_length_as_is": int(long_rows.sum()),
        "max_length": classifier.max_length,
        "ways": {},
    }
    print(f"{len(frame)} dev messages, {int(long_rows.sum())} over {classifier.max_length} tokens as they are")
    print(f"{'way':>13} | {'as is':>6} | {'long ones':>9} | {'ask at end':>10} | {'ask at start':>12} | {'msg/s':>5}")
    for way in args.ways:
        classifier.window_tokens, classifier.tail_tokens = WAYS[way]
        figures: dict[str, float] = {}
        for name, texts in variants.items():
            started = time.perf_counter()
            results = score_frame(scorer, frame_messages(frame.assign(text=texts)), progress=False)
            if name == "ask at the end":
                figures["msg/s (ask at the end)"] = len(texts) / (time.perf_counter() - started)
            figures[name] = evaluate_results(frame, results).evaluation.macro_f1
            if name == "as is":
                subset = frame[long_rows].reset_index(drop=True)
                kept = [r for r, keep in zip(results, long_rows, strict=True) if keep]
                figures["long ones (as is)"] = evaluate_results(subset, kept).evaluation.macro_f1
        report["ways"][way] = figures  # type: ignore[index]
        print(
            f"{way:>13} | {figures['as is']:>6.3f} | {figures['long ones (as is)']:>9.3f} | "
            f"{figures['ask at the end']:>10.3f} | {figures['ask at the start']:>12.3f} | "
            f"{figures['msg/s (ask at the end)']:>5.1f}",
            flush=True,
        )
    out = REPO / "benchmarks" / "results" / "long_messages.json"
    out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"written {out.relative_to(REPO)}", file=sys.stderr)


if __name__ == "__main__":
    main()
