"""Test apps that are generated in part: `heavy_app(into)` copies tests/apps/heavy and writes
its ~100 generated modules (shop/parts/), so the repository keeps only the generator."""

from __future__ import annotations

import shutil
from pathlib import Path

HERE = Path(__file__).resolve().parent
PARTS = 100

PART = '''"""Generated part {n} of the heavy test app (tests/apps/generate.py)."""

import dataclasses
import enum
import re

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from shop import db

NAME = "part_{n:03d}"
PATTERN = re.compile(r"^(?P<sku>[A-Z]{{3}}-{n:03d}-\\d{{4}})(?:/(?P<variant>[a-z]+))?$")
PRICES = {{f"{{NAME}}-{{i}}": (i * {n} + 7) % 997 / 100 for i in range(400)}}


class Status(enum.Enum):
    DRAFT = "draft"
    LIVE = "live"
    RETIRED = "retired"


@dataclasses.dataclass(frozen=True)
class Line:
    sku: str
    quantity: int = 1
    price: float = 0.0

    def total(self) -> float:
        return round(self.quantity * self.price, 2)


class Model(db.Model):
    __tablename__ = "shop_part_{n:03d}"
    id: Mapped[int] = mapped_column(primary_key=True)
    sku: Mapped[str] = mapped_column(sa.String(32), unique=True, index=True)
    title: Mapped[str] = mapped_column(sa.String(200))
    status: Mapped[str] = mapped_column(sa.String(16), default=Status.DRAFT.value)
    price_cents: Mapped[int] = mapped_column(default=0)
    stock: Mapped[int] = mapped_column(default=0)
    weight_grams: Mapped[int] = mapped_column(default=0)
    notes: Mapped[str] = mapped_column(sa.Text, default="")
{relation}

def describe(i: int) -> str:
    line = Line(sku=f"ABC-{n:03d}-{{i:04d}}", quantity=i % 5 + 1, price=PRICES[f"{{NAME}}-{{i % 400}}"])
    return f"{{line.sku}}:{{line.total()}}:{{bool(PATTERN.match(line.sku))}}"


def validate(sku: str) -> bool:
    return PATTERN.match(sku) is not None
'''

RELATION = '''    part_{m:03d}_id: Mapped[int | None] = mapped_column(sa.ForeignKey("shop_part_{m:03d}.id"))
    part_{m:03d} = sa.orm.relationship("shop.parts.part_{m:03d}.Model")
'''


def heavy_app(into: Path) -> Path:
    """A fresh copy of the heavy app at `into` (created), its generated parts included."""
    shutil.copytree(HERE / "heavy", into, ignore=shutil.ignore_patterns("__pycache__"))
    parts = into / "shop" / "parts"
    parts.mkdir(exist_ok=True)
    (parts / "__init__.py").write_text('"""The generated parts (tests/apps/generate.py)."""\n')
    for n in range(PARTS):
        relation = RELATION.format(m=n - 1) if n else ""
        (parts / f"part_{n:03d}.py").write_text(PART.format(n=n, relation=relation))
    return into
