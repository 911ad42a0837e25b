"""A loopback emulation of data.binance.vision, serving zips built from recorded archive rows.

Files are published under the site's real paths (``data/futures/um/<period>/<dataset>/...``)
with a ``.CHECKSUM`` sidecar (``<sha256>  <name>``) exactly as Binance lays them out; anything
not published answers 404 like the real site. Contents are real rows from the recorded archive
(``shared/data``), in Binance's CSV layouts: 12-column klines (no header before 2022, a header
row from then on, as Binance's files have) and fundingRate with its header.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import zipfile
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from tests.support.loopback import LoopbackServer

HOST = "data.binance.vision"
KLINE_HEADER = ("open_time,open,high,low,close,volume,close_time,quote_volume,count,"
                "taker_buy_volume,taker_buy_quote_volume,ignore")
#: Binance's kline CSVs gained a header row in 2022; older files start with data.
HEADER_SINCE = date(2022, 1, 1)


class VisionSite:
    """Publishes zips + sidecars on a ``LoopbackServer``; ``base_url`` is what the downloader uses."""

    def __init__(self, server: LoopbackServer) -> None:
        self.server = server
        self.published: dict[str, bytes] = {}

    @property
    def base_url(self) -> str:
        return f"{self.server.base_url}/{HOST}/"

    @staticmethod
    def route(path: str) -> str:
        return f"/{HOST}/{path}"

    def publish(self, path: str, csv: bytes, *, checksum_of: bytes | None = None) -> bytes:
        """Serve ``path`` (a .zip) holding ``csv`` as ``<name>.csv``; the sidecar hashes ``checksum_of``
        (default: the zip itself — pass other bytes to publish a wrong checksum)."""
        name = path.rsplit("/", 1)[1]
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
            info = zipfile.ZipInfo(name.removesuffix(".zip") + ".csv", date_time=(2020, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, csv)
        blob = buf.getvalue()
        digest = hashlib.sha256(blob if checksum_of is None else checksum_of).hexdigest()
        self.server.routes[("GET", self.route(path))] = blob
        self.server.routes[("GET", self.route(path + ".CHECKSUM"))] = f"{digest}  {name}\n"
        self.published[path] = blob
        return blob

    def gets(self, path: str) -> int:
        """How many GETs reached ``path`` (including injected failures)."""
        return len(self.server.requests_to(self.route(path)))


# -- contents built from the recorded archive ------------------------------------------------
def _maybe_header(lines: list[str], day: date) -> bytes:
    body = "\n".join(lines) + "\n"
    return ((KLINE_HEADER + "\n") if day >= HEADER_SINCE else "").encode() + body.encode()


def minute_rows(archive_dir: Path, symbol: str, day: date) -> list[str]:
    """The recorded 1m kline rows of one UTC day (12-column Binance layout, as recorded)."""
    f = archive_dir / "binance-um" / "klines-1m" / f"{symbol}-1m-{day.isoformat()}.csv.gz"
    return [ln for ln in gzip.decompress(f.read_bytes()).decode().splitlines() if ln]


def minute_klines_csv(archive_dir: Path, symbol: str, day: date) -> bytes:
    return _maybe_header(minute_rows(archive_dir, symbol, day), day)


def hourly_klines_csv(archive_dir: Path, symbol: str, day: date) -> bytes:
    """1h klines of a day aggregated from its 1m rows with exact decimal sums, as Binance builds them.

    (The recorded 1m days reconcile exactly to the recorded 1h candles, see shared/data/README.md.)
    """
    hours: dict[int, list[list[str]]] = {}
    for line in minute_rows(archive_dir, symbol, day):
        cols = line.split(",")
        hours.setdefault(int(cols[0]) // 3_600_000, []).append(cols)
    out = []
    for hour in sorted(hours):
        rows = hours[hour]
        open_ms = hour * 3_600_000

        def total(i: int, rows: list[list[str]] = rows) -> str:
            return format(sum(Decimal(r[i]) for r in rows), "f")

        out.append(",".join([
            str(open_ms), rows[0][1], max(rows, key=lambda r: Decimal(r[2]))[2],
            min(rows, key=lambda r: Decimal(r[3]))[3], rows[-1][4], total(5), str(open_ms + 3_599_999),
            total(7), str(sum(int(r[8]) for r in rows)), total(9), total(10), "0",
        ]))
    return _maybe_header(out, day)


def funding_csv(archive_dir: Path, symbol: str, year: int, month: int) -> bytes:
    """A monthly fundingRate CSV, byte-identical to the recorded one (which mirrors Binance's)."""
    f = archive_dir / "binance-um" / "funding" / f"{symbol}-fundingRate-{year:04d}-{month:02d}.csv.gz"
    return gzip.decompress(f.read_bytes())


def daily_path(dataset: str, symbol: str, tf: str | None, day: date) -> str:
    mid = f"{symbol}/{tf}" if tf else symbol
    return f"data/futures/um/daily/{dataset}/{mid}/{symbol}-{tf or dataset}-{day.isoformat()}.zip"


def monthly_path(dataset: str, symbol: str, tf: str | None, year: int, month: int) -> str:
    mid = f"{symbol}/{tf}" if tf else symbol
    return f"data/futures/um/monthly/{dataset}/{mid}/{symbol}-{tf or dataset}-{year:04d}-{month:02d}.zip"


def publish_crash_day(site: VisionSite, archive_dir: Path, symbol: str, day: date) -> list[str]:
    """Publish one recorded crash day: 1m and 1h klines for the day, funding for its month."""
    paths = [
        daily_path("klines", symbol, "1m", day),
        daily_path("klines", symbol, "1h", day),
        monthly_path("fundingRate", symbol, None, day.year, day.month),
    ]
    site.publish(paths[0], minute_klines_csv(archive_dir, symbol, day))
    site.publish(paths[1], hourly_klines_csv(archive_dir, symbol, day))
    site.publish(paths[2], funding_csv(archive_dir, symbol, day.year, day.month))
    return paths


def day_window(day: date) -> tuple[datetime, datetime]:
    start = datetime(day.year, day.month, day.day)
    return start, start + timedelta(days=1)
