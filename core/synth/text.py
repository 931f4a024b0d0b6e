"""What the synthetic talkers say: English pseudo-sentences (meeting vocabulary) for English voices,
pseudo-word sentences for the other languages of espeak-ng, and short backchannels.

The pools are fixed across runs (own seed) so that the utterance cache is shared by every corpus.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

_NOUNS = ("project budget meeting report design team customer market product plan idea remote "
          "button screen battery price deadline schedule version feature problem question answer "
          "result data model system server network office window table coffee morning weekend "
          "manager student teacher doctor city river garden kitchen picture letter phone camera "
          "story number message document slide chart month year minute hour option decision "
          "proposal strategy colour shape material prototype user interface company partner").split()
_ADJECTIVES = ("new old big small good bad quick slow simple strange important different easy "
               "hard cheap expensive early late final next last whole main special useful clear "
               "blue red green yellow round soft modern classic local global").split()
_VERBS = ("need want like think see know make take find give tell show build change check move "
          "start finish send read write test use buy sell keep try discuss explain compare "
          "prepare review improve").split()
_PERSONS = "I we you they he she".split()
_DETS = "the a this that our their my your every some".split()
_PREPS = "in on for with about after before during from into".split()
_ADVERBS = "really probably maybe actually already still just again also quite".split()
_OPENERS = ("so", "well", "okay", "um", "uh", "right", "and", "but", "actually", "you know", "I mean")
_QUESTION_WORDS = ("what", "why", "how", "when", "where", "who")
BACKCHANNELS = ("yeah", "mm-hmm", "right", "okay", "uh-huh", "yes", "sure", "exactly", "I see",
                "true", "oh really", "no", "hmm", "good", "of course", "yeah yeah")
_SYLLABLES = [c + v for c in "bdfgklmnprstvz" for v in "aeiou"] + ["an", "el", "or", "is", "um"]


def choice(rng: np.random.Generator, items: tuple | list) -> str:
    return items[int(rng.integers(len(items)))]


def _english_sentence(rng: np.random.Generator) -> str:
    c = lambda items: choice(rng, items)  # noqa: E731
    np_ = lambda: f"{c(_DETS)} {c(_ADJECTIVES) + ' ' if rng.random() < 0.5 else ''}{c(_NOUNS)}"  # noqa: E731
    kind = rng.integers(6)
    if kind == 0:
        s = f"{c(_PERSONS)} {c(_ADVERBS)} {c(_VERBS)} {np_()} {c(_PREPS)} {np_()}"
    elif kind == 1:
        s = f"{np_()} is {c(_ADVERBS)} {c(_ADJECTIVES)}, {c(_OPENERS)} {c(_PERSONS)} {c(_VERBS)} it"
    elif kind == 2:
        s = f"{c(_QUESTION_WORDS)} do {c(_PERSONS)} {c(_VERBS)} {np_()} {c(_PREPS)} {np_()}?"
    elif kind == 3:
        s = f"{c(_PERSONS)} {c(_VERBS)} {np_()}, and {c(_PERSONS)} {c(_VERBS)} {np_()}"
    elif kind == 4:
        s = f"{c(_OPENERS)}, {c(_PERSONS)} {c(_ADVERBS)} {c(_VERBS)} {np_()}"
    else:
        s = f"can {c(_PERSONS)} {c(_VERBS)} {np_()} {c(_PREPS)} {np_()} {c(_PREPS)} {np_()}?"
    return s[0].upper() + s[1:] + ("" if s.endswith("?") else ".")


def _pseudo_sentence(rng: np.random.Generator) -> str:
    words = []
    for _ in range(int(rng.integers(3, 11))):
        word = "".join(choice(rng, _SYLLABLES) for _ in range(int(rng.integers(1, 4))))
        words.append(word)
        if rng.random() < 0.08:
            words[-1] += ","
    s = " ".join(words).rstrip(",")
    return s[0].upper() + s[1:] + ("?" if rng.random() < 0.15 else ".")


@lru_cache(maxsize=1)
def sentence_pools(size: int = 3000) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(English pseudo-sentences, language-neutral pseudo-word sentences), fixed across runs so
    that the utterance cache is reused by every corpus."""
    rng = np.random.default_rng(20240917)
    english = tuple(dict.fromkeys(_english_sentence(rng) for _ in range(size)))
    pseudo = tuple(dict.fromkeys(_pseudo_sentence(rng) for _ in range(size)))
    return english, pseudo


# ----------------------------------------------------------------------------------------------
