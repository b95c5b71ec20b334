"""The files the code reads at run time: training configs (`*.yaml`), cleaning recipes (`recipes/*.yaml`) and
FineWeb-2's language tables (`fineweb2/*.yml`).

They stay in `configs/` at the top of the repository, where a reader looks for them, and this folder is also an
installable package, so the same files ship inside the wheel (pyproject.toml: `[tool.setuptools.package-data]`).
Every lookup goes through `path()`, which finds them with importlib.resources: in a checkout, an editable
install and a `pip install` of the wheel alike, wherever the command runs from. Nothing here may be found through a
path relative to the checkout: an installed package has no checkout around it.
"""
from importlib.resources import files
from pathlib import Path

PACKAGE = __name__


def path(name: str = "") -> Path:
    """The packaged file or folder `configs/NAME`, e.g. path("recipes/fineweb.yaml"), path("fineweb2").

    The path may not exist (callers check and say what is missing); `name` is relative to this folder.
    """
    # A regular package installed from a wheel is a folder on disk, so the Traversable is a real pathlib.Path.
    return Path(str(files(PACKAGE).joinpath(*[part for part in name.split("/") if part])))


def names(folder: str, suffixes: tuple[str, ...] = (".yaml", ".yml")) -> list[str]:
    """Stems of the packaged files in `folder` ("" for the training configs), sorted: what `--config NAME` or
    `--recipe NAME` accept."""
    base = path(folder)
    return sorted(p.stem for p in base.iterdir() if p.is_file() and p.suffix in suffixes) if base.is_dir() else []


def find(name_or_path: str, folder: str = "", suffix: str = ".yaml") -> Path | None:
    """A config the user named: an existing file as given, else the packaged `folder/NAME{suffix}` for a bare name
    (`tiny-cpu`) or for a repository-relative path (`configs/tiny-cpu.yaml`, as the README spells it), so the
    README's commands work from any directory after `pip install`. None when neither exists."""
    given = Path(name_or_path)
    if given.is_file():
        return given
    parts = given.parts
    if len(parts) > 1 and parts[0] == "configs":  # configs/recipes/fineweb.yaml -> recipes/fineweb.yaml
        candidate = path("/".join(parts[1:]))
    elif len(parts) == 1:
        candidate = path(f"{folder}/{given.name}" if given.suffix in (".yaml", ".yml")
                         else f"{folder}/{given.name}{suffix}")
    else:
        return None
    return candidate if candidate.is_file() else None


def read_mapping(file: Path, error: type, expected: str) -> dict:
    """The YAML mapping in `file`; a file that is not YAML, or not a mapping, raises `error` in one line."""
    import yaml  # here, so that `import configs` stays free of third-party imports

    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise error(f"{file}: not valid YAML ({' '.join(str(e).split())})") from None
    if not isinstance(data, dict):
        raise error(f"{file}: expected {expected}")
    return data
