"""The models a Bento carries: the encoder and the classifier, in BentoML's model store by tag.

The service names both as `bentoml.models.BentoModel` references, so `bentoml build` copies them
into the Bento and a served Bento reads them from its own model store: `bentoml serve
commsrisk:latest` and `bentoml containerize` work from any directory on any host, with no path
that depends on where the repo lies. `save_bento_models` puts the ones the settings name into the
store (`bash scripts/build_bento.sh` runs it before `bentoml build`).
"""

from __future__ import annotations

import hashlib
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

from commsrisk.errors import ModelNotAvailableError
from commsrisk.settings import Settings

logger = logging.getLogger(__name__)

ENCODER_MODEL = "commsrisk-encoder"
CLASSIFIER_MODEL = "commsrisk-classifier"
BUILD_HINT = "run 'bash scripts/build_bento.sh' (it saves both models, then builds the Bento)"


@dataclass(frozen=True)
class SavedModel:
    """One model put in the store: its tag and the folder it came from."""

    tag: str
    source: Path


def folder_digest(folder: Path) -> str:
    """A digest of every file's relative path and bytes: the same folder gets the same tag version."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(path.relative_to(folder).as_posix().encode())
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:16]


def save_folder(name: str, folder: Path, metadata: dict[str, str]) -> SavedModel:
    """Copy `folder` into the store as `name:<digest>`, made the latest version of `name`.

    A version with the same digest is replaced, so that 'latest' (what `bentoml build` packs) is
    always the folder saved last.
    """
    import bentoml
    from bentoml.exceptions import NotFound

    tag = f"{name}:{folder_digest(folder)}"
    try:
        bentoml.models.delete(tag)
    except NotFound:
        pass
    with bentoml.models.create(tag, labels={"project": "commsrisk"}, metadata=metadata) as model:
        shutil.copytree(folder, model.path, dirs_exist_ok=True)
    logger.info("saved %s to the BentoML model store", tag)
    return SavedModel(tag=tag, source=folder)


def save_bento_models(settings: Settings) -> list[SavedModel]:
    """Save the encoder and the classifier that `settings` serve (production if registered) to the store.

    Raises:
        ModelNotAvailableError: the encoder is not a local folder, or the classifier cannot be found.
    """
    from commsrisk.classifier.model import base_model_identity, classifier_folder
    from commsrisk.scoring import resolve_classifier_location

    encoder = Path(settings.model.base_model)
    if not (encoder / "config.json").is_file():
        raise ModelNotAvailableError(
            f"model.base_model '{encoder}' is not a local encoder folder; build it with 'commsrisk base-model "
            "build' (or download the Hugging Face model into a folder and name that folder)"
        )
    classifier, version = classifier_folder(
        resolve_classifier_location(settings),
        tracking_uri=settings.tracking.resolved_uri(),
        timeout_s=settings.tracking.registry_timeout_s,
    )
    if not (classifier / "combiner.json").is_file():
        raise ModelNotAvailableError(f"classifier folder '{classifier}' is not a commsrisk model (no combiner.json)")
    return [
        save_folder(ENCODER_MODEL, encoder, {"identity": base_model_identity(str(encoder))}),
        save_folder(CLASSIFIER_MODEL, classifier, {"version": version}),
    ]


def saved_model_tags() -> list[str]:
    """The tags of both models if the model store in use holds them (none otherwise).

    The service names them only then: a plain `bentoml serve` of the module (`commsrisk serve`)
    loads from the settings' paths and must not need a store; `bentoml build` and a Bento do.
    """
    import bentoml
    from bentoml.exceptions import NotFound

    tags = [f"{ENCODER_MODEL}:latest", f"{CLASSIFIER_MODEL}:latest"]
    try:
        for tag in tags:
            bentoml.models.get(tag)
    except NotFound:
        return []
    return tags


def settings_for_bento(settings: Settings, encoder: Path, classifier: Path) -> Settings:
    """The settings with the model paths of a served Bento's own store in place of the repo's."""
    model = settings.model.model_copy(update={"base_model": str(encoder), "classifier": str(classifier)})
    return settings.model_copy(update={"model": model})


def missing_model_error(tag: str) -> ModelNotAvailableError:
    """What to do when a Bento lacks a model it names."""
    return ModelNotAvailableError(f"the Bento has no model '{tag}' in its model store; {BUILD_HINT}")
