"""The seeded template grammar that writes JOOCI-synth's sentences.

A few hundred everyday words in a handful of sentence templates: enough variety that a recogniser
must read phones rather than memorise sentences, small enough that every word is seen many times
in a short corpus. The vocabulary is chosen so that all 39 ARPAbet phones occur, including the rare
ones (ZH in "treasure", OY in "noise", UH in "wood"). Sentences are lower-case words without
punctuation, the form ASR scoring compares.
"""

from __future__ import annotations

import random

DETERMINERS = "the a this that every some my your our their one another".split()

ADJECTIVES = """
red green blue yellow purple orange beige golden silver small big little happy quiet loud old young
new bright dark soft warm cold heavy strange lazy clever brave gentle noisy shiny tiny huge wooden
pleasant careful hungry thirsty sleepy angry funny friendly royal loyal usual casual visual smooth
rough sharp rich cheap thick thin wet dry busy empty tired proud curious famous jolly giant
""".split()

NOUNS = """
cat dog horse bird fish mouse cow goat sheep boy girl man woman child teacher doctor farmer king
queen judge soldier sailor driver baker pilot singer player artist garden house river mountain
village city forest island window table chair book letter picture treasure garage television
vision measure pleasure boat ship train bus car bicycle apple bread cheese cake soup water coffee
tea milk cookie toy coin voice noise oil choice key door road bridge tower castle church school
market kitchen ocean beach flower tree leaf stone rock snow rain thunder cloud moon sun star sky
morning evening summer winter music song story question answer machine engine thing path mouth
feather weather brother mother father sister uncle wood foot hook cook sugar bush wolf jacket
jewel giraffe chicken zebra lion tiger monkey rabbit turtle pencil basket bottle blanket pillow
camera guitar hammer ladder mirror pocket rocket saddle wagon yard village lamp
""".split()

NAMES = """
anna thomas george judy charlie zoe oliver sophie jack lily peter rose joseph ruth victor hugo
""".split()

VERBS_TRANSITIVE = """
saw found took gave bought brought painted watched carried pushed pulled moved opened closed
cleaned washed followed visited helped enjoyed joined chose measured treasured heard liked loved
wanted needed kept left held caught threw lost wrote read sold cooked fixed used showed thanked
touched checked judged changed climbed crossed borrowed noticed
""".split()

VERBS_INTRANSITIVE = """
slept laughed sang danced waited jumped arrived smiled shouted whispered cried played rested worked
walked stayed swam wondered listened paused
""".split()

PREPOSITIONS = "in on under near behind beside over through with into across along beyond toward".split()

ADVERBS = """
quickly slowly quietly happily usually suddenly never always often yesterday today again
carefully gently loudly early
""".split()

# Each template is a list of slots; a slot is a word class or a literal word.
TEMPLATES: tuple[tuple[str, ...], ...] = (
    ("DET", "ADJ", "NOUN", "VT", "DET", "NOUN"),
    ("DET", "NOUN", "VI", "PREP", "DET", "NOUN"),
    ("NAME", "VT", "DET", "ADJ", "NOUN", "ADV"),
    ("DET", "ADJ", "NOUN", "VI", "ADV"),
    ("NAME", "and", "NAME", "VT", "DET", "NOUN", "PREP", "DET", "ADJ", "NOUN"),
    ("ADV", "DET", "ADJ", "NOUN", "VI"),
    ("there", "is", "a", "ADJ", "NOUN", "PREP", "DET", "NOUN"),
    ("NAME", "VI", "PREP", "DET", "ADJ", "NOUN"),
    ("DET", "NOUN", "VT", "DET", "ADJ", "NOUN", "PREP", "DET", "NOUN"),
    ("the", "NOUN", "was", "ADJ", "and", "ADJ"),
)

_CLASSES: dict[str, list[str]] = {
    "DET": DETERMINERS, "ADJ": ADJECTIVES, "NOUN": NOUNS, "NAME": NAMES, "VT": VERBS_TRANSITIVE,
    "VI": VERBS_INTRANSITIVE, "PREP": PREPOSITIONS, "ADV": ADVERBS,
}


def vocabulary() -> list[str]:
    """Every word the grammar can produce, sorted."""
    words = {w for ws in _CLASSES.values() for w in ws}
    words |= {slot for t in TEMPLATES for slot in t if slot not in _CLASSES}
    return sorted(words)


def sentence(rng: random.Random) -> list[str]:
    """One sentence as a list of lower-case words, drawn with ``rng``."""
    template = rng.choice(TEMPLATES)
    words = [rng.choice(_CLASSES[s]) if s in _CLASSES else s for s in template]
    # "a" before a vowel letter reads wrong and trips listeners; fix the article.
    return [("an" if w == "a" and i + 1 < len(words) and words[i + 1][0] in "aeiou" else w)
            for i, w in enumerate(words)]
