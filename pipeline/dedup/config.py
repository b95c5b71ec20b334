"""What deduplication does, and when it is on.

The defaults are FineWeb's: MinHash over word 5-grams, 14 buckets of 8 hashes, 64-bit hashes (the probability that
two documents are paired is 1 - (1 - s^8)^14 for MinHash similarity s: 0.92 at s = 0.8, 0.22 at s = 0.6), plus
exact dedup on a normalised content hash and URL dedup. A recipe YAML may change them in a `dedup:` section:

    dedup:
      exact: true            # same text once lower-cased and with whitespace collapsed
      url: true              # same URL (metadata.url; scheme and host lower-cased, #fragment dropped)
      minhash: true          # near duplicates
      n_grams: 5             # words per shingle
      num_buckets: 14
      hashes_per_bucket: 8
      hash_precision: 64     # 32 or 64
      language: en           # word splitting of datatrove's tokenizer for this language
      per_language: fineweb2 # instead: each document's words by the tokenizer of its own language
                             # (configs/fineweb2/<lang_Script>.yml; `language` for the others)
      rehydrate: false       # true: repeat each kept document by the size of its duplicate cluster, with
                             # FineWeb-2's weights (pipeline/dedup/rehydrate.py; also --rehydrate)
      after: language_filter # run between the recipe's steps, right after this one (FineWeb-2's place: after
                             # language ID, before the quality filters); default: after the whole recipe

Whether dedup runs at all is `--dedup/--no-dedup`; by default it does for every input except the Hub corpora that
were deduplicated when they were made (fineweb, fineweb-edu, fineweb-2, fineweb-edu-chinese, cci3-hq).
"""
from dataclasses import asdict, dataclass, fields

from gptstack.errors import InputError

# deduplicated when they were made (pipeline/read/hub.py); FineWeb-2 keeps each cluster's size for --rehydrate
ALREADY_DEDUPLICATED_CORPORA = ("fineweb", "fineweb-edu", "fineweb-2", "fineweb-edu-chinese", "cci3-hq")


@dataclass(frozen=True)
class DedupConfig:
    exact: bool = True
    url: bool = True
    minhash: bool = True
    n_grams: int = 5
    num_buckets: int = 14
    hashes_per_bucket: int = 8
    hash_precision: int = 64
    language: str = "en"
    per_language: str = ""  # "fineweb2": MinHash splits each document with its language's configs/fineweb2 tokenizer
    seed: int = 1  # of MinHash's hash functions (FineWeb's value); unrelated to the shuffle --seed
    after: str = ""  # a recipe step: dedup runs right after it, the recipe's later steps after dedup; "": at the end
    rehydrate: bool = False  # repeat each kept document by its cluster size, FineWeb-2's weights (dedup/rehydrate.py)

    def as_dict(self) -> dict:
        return asdict(self)

    def minhash_config(self):
        from datatrove.pipeline.dedup.minhash import MinhashConfig
        from datatrove.utils.hashing import HashConfig

        return MinhashConfig(n_grams=self.n_grams, num_buckets=self.num_buckets,
                             hashes_per_bucket=self.hashes_per_bucket, seed=self.seed,
                             hash_config=HashConfig(precision=self.hash_precision))

    @property
    def any(self) -> bool:
        return self.exact or self.url or self.minhash


def parse_dedup_section(where: str, data, steps: list[str] = ()) -> DedupConfig:
    """The `dedup:` mapping of a recipe (None: the defaults); a bad key or value is a one-line error naming `where`.
    `steps`: the recipe's enabled steps, one of which `after` must name."""
    if data is None:
        return DedupConfig()
    if not isinstance(data, dict):
        raise InputError(f"{where}: `dedup` must be a mapping such as {{minhash: true, n_grams: 5}}")
    types = {f.name: f.type for f in fields(DedupConfig)}
    values = {}
    for key, value in data.items():
        if key not in types:
            raise InputError(f"{where}: dedup.{key} is not an option (options: {', '.join(types)})")
        wanted = types[key]
        if not isinstance(value, wanted) or (wanted is int and isinstance(value, bool)):
            raise InputError(f"{where}: dedup.{key} must be {wanted.__name__}, got {value!r}")
        values[key] = value
    config = DedupConfig(**values)
    for key in ("n_grams", "num_buckets", "hashes_per_bucket"):
        if getattr(config, key) < 1:
            raise InputError(f"{where}: dedup.{key} must be at least 1, got {getattr(config, key)}")
    if config.hash_precision not in (32, 64):
        raise InputError(f"{where}: dedup.hash_precision must be 32 or 64, got {config.hash_precision}")
    if config.per_language not in ("", "fineweb2"):
        raise InputError(f"{where}: dedup.per_language must be fineweb2 (or left out), got {config.per_language!r}")
    if config.after and config.after not in steps:
        raise InputError(f"{where}: dedup.after must name an enabled step of the recipe (one of: "
                         f"{', '.join(steps) or 'none'}), got {config.after!r}")
    from datatrove.utils.word_tokenizers import load_tokenizer_assignments

    if config.minhash and config.language not in load_tokenizer_assignments():
        raise InputError(f"{where}: dedup.language {config.language!r} has no datatrove word tokenizer "
                         "(use an ISO 639-1 code such as en, de, fr)")
    return config


def dedup_enabled(flag: bool | None, corpus: str) -> bool:
    """--dedup / --no-dedup, or the corpus's default when neither was given."""
    return flag if flag is not None else corpus not in ALREADY_DEDUPLICATED_CORPORA
