"""The generated sample audiences: realistic CSV exports of Indonesian recipients."""

from __future__ import annotations

import csv
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Final

_FIRST_NAMES: Final = (
    "Budi", "Siti", "Agus", "Dewi", "Rina", "Andi", "Putri", "Wayan", "Made", "Nur", "Fitri",
    "Joko", "Sri", "Adi", "Ayu", "Bayu", "Dian", "Eka", "Hendra", "Indah", "Kartika", "Lestari",
    "Rizki", "Yusuf", "Fajar", "Gita", "Hadi", "Intan", "Ketut", "Wulan",
)  # fmt: skip
# Indonesian mobile prefixes (Telkomsel, Indosat, XL, Axis, Tri, Smartfren).
_MOBILE_PREFIXES: Final = (
    "811", "812", "813", "821", "822", "823", "851", "852", "853", "814", "815", "816", "855",
    "856", "857", "858", "817", "818", "819", "859", "877", "878", "831", "838", "895", "896",
    "897", "898", "899", "881", "882", "888",
)  # fmt: skip


def _invalid_phone(rng: random.Random) -> str:
    """What CRMs export besides good numbers: local formats, cut-off and foreign digits."""
    digits = f"{rng.randrange(10**7, 10**8)}"
    return rng.choice(
        (
            f"0{rng.choice(_MOBILE_PREFIXES)}{digits}",
            f"+62 {rng.choice(_MOBILE_PREFIXES)}-{digits[:3]}",
            f"+62 21 {digits[:3]}",
            f"{rng.choice(_MOBILE_PREFIXES)}-{digits[:4]}-{digits[4:]}",
        )
    )


def sample_audience(count: int, seed: int) -> list[tuple[str, str, str]]:
    """`count` CSV rows (phone, opted_in_at, first_name), deterministic for a seed.

    About 0.3% invalid phones, 0.5% repeats of an earlier phone (some formatted
    differently), 0.5% without an opt-in, 0.1% without a first name; a tenth of the
    valid phones are written with spaces and dashes, as CRMs export them.
    """
    rng = random.Random(seed)
    used: set[str] = set()
    written: list[str] = []
    rows: list[tuple[str, str, str]] = []
    for _ in range(count):
        roll = rng.random()
        name = rng.choice(_FIRST_NAMES)
        opted_in = (
            f"2025-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
            f"T{rng.randint(8, 21):02d}:{rng.randint(0, 59):02d}:00+07:00"
        )
        if roll < 0.003:
            rows.append((_invalid_phone(rng), opted_in, name))
            continue
        if roll < 0.008 and written:
            rows.append((rng.choice(written), opted_in, name))
            continue
        if roll < 0.013:
            opted_in = ""
        elif roll < 0.014:
            name = ""
        while True:
            national = rng.choice(_MOBILE_PREFIXES) + f"{rng.randrange(10**7, 10**8)}"
            if national not in used:
                used.add(national)
                break
        phone = f"+62{national}"
        if rng.random() < 0.1:
            phone = f"+62 {national[:3]}-{national[3:7]}-{national[7:]}"
        written.append(phone)
        rows.append((phone, opted_in, name))
    return rows


def write_audience(path: Path, rows: Sequence[tuple[str, str, str]]) -> None:
    with path.open("w", encoding="utf-8", newline="") as stream:
        writer = csv.writer(stream, lineterminator="\n")
        writer.writerow(("phone", "opted_in_at", "first_name"))
        writer.writerows(rows)
