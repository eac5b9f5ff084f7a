"""Draw LoRA Deck's icon set for the installers (run headless; the outputs are committed).

    QT_QPA_PLATFORM=offscreen .venv/bin/python packaging/briefcase/make_icons.py

Writes into packaging/briefcase/icons/:
    loradeck-<size>.png        app icon, 16 ... 1024 px (Linux, and the source of the others)
    loradeck.ico               Windows (PNG-compressed entries, 16 ... 256)
    loradeck.icns              macOS (PNG entries, 16 ... 1024)
    gguf-*, safetensors-*      document icons for the two file types LoRA Deck opens (.png/.ico/.icns)

The picture: three stacked cards (a deck of adapters) on a dark tile, the front card carrying a
strength slider. Document icons are a page with a folded corner and the file type written on it.
ICO and ICNS are written by hand (both are a small index of embedded PNGs), so no Pillow is needed.
"""
from __future__ import annotations

import os
import struct
import sys
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import QBuffer, QByteArray, QIODevice, QPointF, QRectF, Qt  # noqa: E402
from PySide6.QtGui import QColor, QFont, QGuiApplication, QImage, QLinearGradient, QPainter, QPainterPath, QPen  # noqa: E402

OUT = Path(__file__).resolve().parent / "icons"
APP_SIZES = (16, 32, 48, 64, 128, 256, 512, 1024)
DOC_SIZES = (16, 32, 48, 64, 128, 256, 512, 1024)
ICO_SIZES = (16, 32, 48, 64, 128, 256)
# ICNS type codes of PNG entries: (code, pixel size)
ICNS_ENTRIES = (("icp4", 16), ("icp5", 32), ("icp6", 64), ("ic07", 128), ("ic08", 256), ("ic09", 512),
                ("ic10", 1024), ("ic11", 32), ("ic12", 64), ("ic13", 256), ("ic14", 512))

CARD_COLOURS = ("#7c5cff", "#ff8a3d", "#20c3a6")     # back, middle, front
TILE_TOP, TILE_BOTTOM = "#2a3147", "#151a27"
DOCS = {"gguf": ("GGUF", "#20c3a6"), "safetensors": ("ST", "#ff8a3d")}


def _canvas(size: int) -> tuple[QImage, QPainter]:
    img = QImage(size, size, QImage.Format.Format_ARGB32_Premultiplied)
    img.fill(Qt.GlobalColor.transparent)
    p = QPainter(img)
    p.setRenderHint(QPainter.RenderHint.Antialiasing)
    p.scale(size / 1024, size / 1024)            # draw on a 1024 grid
    return img, p


def draw_app(size: int) -> QImage:
    img, p = _canvas(size)
    grad = QLinearGradient(QPointF(0, 0), QPointF(0, 1024))
    grad.setColorAt(0, QColor(TILE_TOP))
    grad.setColorAt(1, QColor(TILE_BOTTOM))
    p.setPen(Qt.PenStyle.NoPen)
    p.setBrush(grad)
    p.drawRoundedRect(QRectF(48, 48, 928, 928), 200, 200)
    # Three cards, fanned: back ones rotated, the front one upright.
    for i, (colour, angle, dx, dy) in enumerate(zip(CARD_COLOURS, (-16, -7, 0), (-70, -30, 10), (-20, -10, 30))):
        p.save()
        p.translate(512 + dx, 520 + dy)
        p.rotate(angle)
        card = QRectF(-230, -300, 460, 600)
        p.setBrush(QColor(0, 0, 0, 70))
        p.drawRoundedRect(card.translated(10, 16), 56, 56)
        p.setBrush(QColor(colour))
        p.drawRoundedRect(card, 56, 56)
        if i == 2:
            # The strength slider on the front card: a track and a knob.
            p.setPen(QPen(QColor("#0f3b35"), 34, Qt.PenStyle.SolidLine, Qt.PenCapStyle.RoundCap))
            p.drawLine(QPointF(-150, 150), QPointF(150, 150))
            p.setPen(Qt.PenStyle.NoPen)
            p.setBrush(QColor("#ffffff"))
            p.drawEllipse(QPointF(60, 150), 62, 62)
            # "LoRA" as two low-rank bars: a tall thin and a short wide block.
            p.setBrush(QColor("#ffffff"))
            p.drawRoundedRect(QRectF(-150, -220, 70, 250), 20, 20)
            p.drawRoundedRect(QRectF(-50, -220, 200, 70), 20, 20)
        p.restore()
    p.end()
    return img


def draw_doc(kind: str, size: int) -> QImage:
    label, colour = DOCS[kind]
    img, p = _canvas(size)
    page = QPainterPath()
    page.moveTo(200, 60)
    page.lineTo(660, 60)
    page.lineTo(840, 240)
    page.lineTo(840, 964)
    page.lineTo(200, 964)
    page.closeSubpath()
    p.setPen(QPen(QColor("#9aa3b5"), 16))
    p.setBrush(QColor("#f7f8fb"))
    p.drawPath(page)
    fold = QPainterPath()
    fold.moveTo(660, 60)
    fold.lineTo(660, 240)
    fold.lineTo(840, 240)
    fold.closeSubpath()
    p.setBrush(QColor("#d9dde6"))
    p.drawPath(fold)
    p.setPen(Qt.PenStyle.NoPen)
    p.setBrush(QColor(colour))
    p.drawRoundedRect(QRectF(250, 560, 540, 300), 48, 48)
    # A small deck mark on the page.
    for i, c in enumerate(CARD_COLOURS):
        p.setBrush(QColor(c))
        p.drawRoundedRect(QRectF(280 + i * 60, 200 + i * 40, 200, 260), 28, 28)
    p.setPen(QColor("#ffffff"))
    font = QFont()
    font.setFamilies(["DejaVu Sans", "Arial", "Helvetica"])
    font.setBold(True)
    font.setPixelSize(200 if len(label) <= 2 else 150)
    p.setFont(font)
    p.drawText(QRectF(250, 560, 540, 300), Qt.AlignmentFlag.AlignCenter, label)
    p.end()
    return img


def png_bytes(img: QImage) -> bytes:
    data = QByteArray()
    buf = QBuffer(data)
    buf.open(QIODevice.OpenModeFlag.WriteOnly)
    if not img.save(buf, "PNG"):
        raise RuntimeError("Qt could not encode a PNG")
    buf.close()
    return bytes(data)


def write_ico(path: Path, pngs: dict[int, bytes]) -> None:
    sizes = [s for s in ICO_SIZES if s in pngs]
    header = struct.pack("<HHH", 0, 1, len(sizes))
    offset = 6 + 16 * len(sizes)
    entries, blobs = b"", b""
    for s in sizes:
        blob = pngs[s]
        dim = 0 if s >= 256 else s                   # 0 means 256 in an ICO directory
        entries += struct.pack("<BBBBHHII", dim, dim, 0, 0, 1, 32, len(blob), offset)
        offset += len(blob)
        blobs += blob
    path.write_bytes(header + entries + blobs)


def write_icns(path: Path, render) -> None:
    body = b""
    for code, px in ICNS_ENTRIES:
        blob = png_bytes(render(px))
        body += code.encode("ascii") + struct.pack(">I", 8 + len(blob)) + blob
    path.write_bytes(b"icns" + struct.pack(">I", 8 + len(body)) + body)


def write_set(stem: str, render, sizes) -> list[Path]:
    written = []
    pngs = {}
    for s in sizes:
        blob = png_bytes(render(s))
        pngs[s] = blob
        f = OUT / f"{stem}-{s}.png"
        f.write_bytes(blob)
        written.append(f)
    write_ico(OUT / f"{stem}.ico", pngs)
    write_icns(OUT / f"{stem}.icns", render)
    written += [OUT / f"{stem}.ico", OUT / f"{stem}.icns"]
    return written


def main() -> int:
    app = QGuiApplication.instance() or QGuiApplication(sys.argv[:1])  # noqa: F841 - fonts need it
    OUT.mkdir(parents=True, exist_ok=True)
    files = write_set("loradeck", draw_app, APP_SIZES)
    for kind in DOCS:
        files += write_set(kind, lambda s, k=kind: draw_doc(k, s), DOC_SIZES)
    for f in files:
        print(f"wrote {f.relative_to(OUT.parent.parent.parent)} ({f.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    # Leave without interpreter teardown: PySide6 can crash while garbage-collecting at exit.
    os._exit(code)
