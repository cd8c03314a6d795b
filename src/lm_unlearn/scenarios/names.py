"""Invented names from syllables, checked against a list of real ones.

A generated name must not be a real person's name, a real place or a real brand, so that
a model cannot know anything about it before training and forgetting it removes only
what we taught. Syllables alone cannot promise that, so every name is also checked
against `REAL_NAMES` (common first names, surnames, places and brands) and re-drawn on a
hit. The list is small by design: it catches the short, common collisions that
syllable names actually produce; it is not a census.
"""

from __future__ import annotations

import random

# Onsets and nuclei chosen to sound name-like but unfamiliar in English ("vr", "ks", "ae").
ONSETS = (
    "b",
    "d",
    "f",
    "g",
    "k",
    "l",
    "m",
    "n",
    "p",
    "r",
    "s",
    "t",
    "v",
    "z",
    "br",
    "dr",
    "kr",
    "tr",
    "vr",
    "th",
    "sh",
    "ks",
    "gl",
    "pl",
    "zh",
    "qu",
)
NUCLEI = ("a", "e", "i", "o", "u", "ae", "ei", "ou", "ya", "io")
CODAS = ("", "", "", "n", "r", "l", "s", "th", "m", "x", "sk", "nd")

REAL_NAMES = frozenset(
    """
    aaron adam adrian ahmed aisha alan albert alex alexander alice amanda amber amy ana andrea andrew
    angela anna anne anthony arthur barbara ben benjamin beth betty bill bob brian bruce carl carlos
    carol caroline catherine charles charlie chen chris christine claire daniel david deborah dennis
    diana donald donna dora doris dorothy edward elena eli elizabeth ella ellen emily emma eric eva
    evelyn frank gary george grace hannah harold harry helen henry ian isaac ivan jack jacob james jane
    janet jason jean jennifer jessica jim joan john jonathan jose joseph joshua juan judith julia julie
    karen kate kevin kim laura lee leo lina linda lisa liz lucas lucy luis maria marie mark martha
    mary matthew maya megan michael michelle mike mila mira mohammed nancy nina noah nora oliver olivia
    omar oscar pam patricia paul peter rachel raj ravi rebecca richard robert rosa ruth ryan sam sara
    sarah scott sean sofia sophie stephen steven susan tara teresa thomas tim tina tom tony ursula
    vera victor walter william yuki zara zoe ali bela dana dina elsa ida ines irene iris lara lena
    luna mona nadia olga rita rosa tessa vida zola kai leon luka milo nico otto theo

    smith johnson williams brown jones garcia miller davis rodriguez martinez hernandez lopez gonzalez
    wilson anderson thomas taylor moore jackson martin lee perez thompson white harris sanchez clark
    lewis robinson walker young allen king wright scott torres nguyen hill flores green adams nelson
    baker hall rivera campbell mitchell carter roberts kumar singh patel wang li zhang liu muller
    schmidt schneider fischer weber meyer wagner becker rossi russo ferrari bianchi dubois durand
    moreau kowalski novak ivanov petrov tanaka suzuki sato kim park choi silva santos costa

    london paris berlin rome madrid lisbon vienna prague warsaw moscow kyiv athens cairo lagos nairobi
    tokyo osaka kyoto seoul beijing shanghai delhi mumbai dhaka karachi tehran baghdad dubai doha
    sydney melbourne auckland toronto montreal vancouver chicago boston denver dallas houston miami
    atlanta seattle portland phoenix lima quito bogota caracas santiago havana oslo bergen stockholm
    helsinki riga tallinn vilnius minsk sofia bucharest belgrade zagreb split tirana skopje dublin
    cork edinburgh glasgow cardiff bristol leeds york bath oxford cambridge geneva zurich bern basel
    milan turin naples venice genoa porto seville valencia bilbao lyon nice marseille toulouse brest
    nantes lille hamburg munich cologne bonn dresden leipzig kiel ulm gent bruges antwerp delft leiden
    utrecht rotterdam amsterdam hague tunis rabat fez tangier accra dakar kano abuja luanda harare
    lusaka durban perth hobart darwin lhasa hanoi manila jakarta bali dili male goa pune agra lahore
    kabul baku yerevan tbilisi ankara izmir bursa konya aleppo damascus beirut amman gaza sana aden
    muscat riyadh mecca medina jeddah khartoum juba kampala kigali asmara tripoli benghazi alexandria
    luxor aswan giza sparta troy thebes delos crete rhodes malta cyprus sicily sardinia corsica
    france germany italy spain portugal greece turkey egypt india china japan korea brazil peru chile
    mexico canada russia poland norway sweden finland denmark iceland ireland wales scotland england
    kenya ghana mali chad niger nigeria sudan oman yemen iran iraq syria israel jordan libya tunisia
    algeria morocco cuba haiti samoa tonga fiji nauru palau laos nepal bhutan tibet congo gabon togo
    benin angola zambia malawi uganda rwanda burundi somalia eritrea lesotho namibia botswana
    asia africa europe america oceania atlantic pacific arctic sahara nile amazon danube rhine volga
    thames seine loire indus ganges tigris everest alps andes ural altai gobi

    acme apple amazon google meta tesla sony nokia canon nikon ikea lego fiat audi bmw ford honda kia
    mazda nissan opel skoda toyota volvo dell intel nike adidas puma zara gucci prada rolex shell
    visa lexus tata bosch braun miele philips sharp sanyo casio dyson kodak xerox yahoo zoom uber
    """.split()
)


def syllable(rng: random.Random) -> str:
    return rng.choice(ONSETS) + rng.choice(NUCLEI) + rng.choice(CODAS)


class NameMaker:
    """Draws unique invented names; none repeats within one world and none is in REAL_NAMES."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.used: set[str] = set()

    def word(self, syllables: int) -> str:
        for _ in range(1000):
            name = "".join(syllable(self.rng) for _ in range(syllables)).capitalize()
            key = name.lower()
            # Very short or very long words read badly; real names are refused outright.
            if 4 <= len(key) <= 11 and key not in REAL_NAMES and key not in self.used:
                self.used.add(key)
                return name
        raise RuntimeError("ran out of invented names; use fewer entities or more syllables")

    def person(self) -> tuple[str, str]:
        return self.word(2), self.word(self.rng.choice((2, 3)))
