"""A mysqldump-like SQL dump: CREATE TABLE statements and extended INSERT lines of realistic rows.

Rows are produced column-wise with numpy and formatted in one pass per INSERT line, so a 300 MiB
dump takes a few seconds. Text columns mix a pool of sentences (compressible, like real prose and
repeated user agents) with random tokens, hashes and base64 payloads (incompressible), which gives
zstd ratios in the range of real application dumps (~3-4x).
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np

from benchmarks._text import WORDS

HEADER = (
    "-- MariaDB dump 10.19  Distrib 10.11.6-MariaDB, for debian-linux-gnu (x86_64)\n--\n"
    "-- Host: localhost    Database: app_db\n"
    "-- ------------------------------------------------------\n"
    "-- Server version\t10.11.6-MariaDB-0+deb12u1\n\n"
    "/*!40101 SET @OLD_CHARACTER_SET_CLIENT=@@CHARACTER_SET_CLIENT */;\n"
    "/*!40101 SET NAMES utf8mb4 */;\n/*!40103 SET @OLD_TIME_ZONE=@@TIME_ZONE */;\n"
    "/*!40103 SET TIME_ZONE='+00:00' */;\n/*!40014 SET @OLD_UNIQUE_CHECKS=@@UNIQUE_CHECKS, UNIQUE_CHECKS=0 */;\n"
    "/*!40014 SET @OLD_FOREIGN_KEY_CHECKS=@@FOREIGN_KEY_CHECKS, FOREIGN_KEY_CHECKS=0 */;\n\n"
)
TRAILER = (
    "/*!40103 SET TIME_ZONE=@OLD_TIME_ZONE */;\n/*!40014 SET FOREIGN_KEY_CHECKS=@OLD_FOREIGN_KEY_CHECKS */;\n"
    "/*!40014 SET UNIQUE_CHECKS=@OLD_UNIQUE_CHECKS */;\n"
    "/*!40101 SET CHARACTER_SET_CLIENT=@OLD_CHARACTER_SET_CLIENT */;\n\n-- Dump completed\n"
)
FIRST = (
    "Anna",
    "Ben",
    "Chloe",
    "David",
    "Emma",
    "Felix",
    "Greta",
    "Hannah",
    "Ivan",
    "Julia",
    "Karl",
    "Lena",
    "Max",
    "Nina",
    "Oskar",
    "Paula",
    "Rosa",
    "Sven",
    "Tina",
    "Uwe",
    "Vera",
    "Willi",
)
LAST = (
    "Schmidt",
    "Mueller",
    "Meyer",
    "Weber",
    "Wagner",
    "Becker",
    "Hoffmann",
    "Koch",
    "Richter",
    "Klein",
    "Wolf",
    "Neumann",
    "Schwarz",
    "Zimmermann",
    "Braun",
    "Krueger",
    "Hartmann",
    "Lange",
)
STATUS = ("pending", "paid", "shipped", "cancelled", "refunded", "completed")
EVENTS = ("created", "updated", "deleted", "restored", "login", "logout")
AGENTS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148",
    "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
)
LINE_BYTES = 1_000_000  # mysqldump's default net_buffer_length: one INSERT line holds about this much


class _Src:
    """Column generators over one numpy Generator."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        words = np.array(WORDS)
        lens = rng.integers(4, 22, 6000)
        self.sentences = [" ".join(words[rng.integers(0, len(words), n)]).capitalize() + "." for n in lens]

    def ints(self, lo: int, hi: int, n: int) -> list[int]:
        return self.rng.integers(lo, hi, n).tolist()  # type: ignore[no-any-return]

    def pick(self, seq: tuple[str, ...] | list[str], n: int) -> list[str]:
        return [seq[i] for i in self.rng.integers(0, len(seq), n)]

    def times(self, n: int) -> list[str]:
        secs = 1_700_000_000 + np.sort(self.rng.integers(0, 60_000_000, n))
        return [str(t).replace("T", " ") for t in np.array(secs, dtype="datetime64[s]").astype(str)]

    def b64(self, nbytes: int, n: int) -> list[str]:
        raw = base64.b64encode(self.rng.bytes(nbytes * n)).decode()
        w = len(raw) // n
        return [raw[i * w : (i + 1) * w] for i in range(n)]

    def hexs(self, nbytes: int, n: int) -> list[str]:
        raw = self.rng.bytes(nbytes * n).hex()
        w = nbytes * 2
        return [raw[i * w : (i + 1) * w] for i in range(n)]

    def text(self, n: int, lo: int, hi: int) -> list[str]:
        counts = self.rng.integers(lo, hi, n)
        idx = self.rng.integers(0, len(self.sentences), int(counts.sum())).tolist()
        out, pos, s = [], 0, self.sentences
        for c in counts.tolist():
            out.append(" ".join(s[i] for i in idx[pos : pos + c]))
            pos += c
        return out


def _users(s: _Src, start: int, n: int) -> list[str]:
    f, la, t = s.pick(FIRST, n), s.pick(LAST, n), s.times(n)
    pw, tok = s.b64(40, n), s.hexs(30, n)
    return [
        f"({start + i},'{f[i]} {la[i]}','{f[i].lower()}.{la[i].lower()}{i % 977}@example.com','{t[i]}',"
        f"'$2y$12${pw[i][:53]}','{tok[i]}','{t[i]}','{t[i]}')"
        for i in range(n)
    ]


def _orders(s: _Src, start: int, n: int) -> list[str]:
    u, st, amt, t = s.ints(1, 50_000, n), s.pick(STATUS, n), s.ints(100, 500_000, n), s.times(n)
    notes = s.text(n, 0, 2)
    return [
        f"({start + i},{u[i]},'{st[i]}',{amt[i] // 100}.{amt[i] % 100:02d},'EUR','{notes[i]}','{t[i]}','{t[i]}')"
        for i in range(n)
    ]


def _audit(s: _Src, start: int, n: int) -> list[str]:
    u, ev, typ, aid = s.ints(1, 50_000, n), s.pick(EVENTS, n), s.pick(WORDS, n), s.ints(1, 2_000_000, n)
    a, b, c = s.pick(WORDS, n), s.ints(0, 10_000, n), s.pick(STATUS, n)
    ip, ua, t, tok = s.ints(1, 255, 4 * n), s.pick(AGENTS, n), s.times(n), s.hexs(8, n)
    return [
        f"({start + i},{u[i]},'{ev[i]}','App\\\\Models\\\\{typ[i].capitalize()}',{aid[i]},"
        f'\'{{"{a[i]}":{b[i]},"status":"{c[i]}"}}\',\'{{"{a[i]}":{b[i] + 1},"status":"{c[i]}","ref":"{tok[i]}"}}\','
        f"'https://app.example.com/{typ[i]}/{aid[i]}/edit','{ip[4 * i]}.{ip[4 * i + 1]}.{ip[4 * i + 2]}.{ip[4 * i + 3]}',"
        f"'{ua[i]}','{t[i]}')"
        for i in range(n)
    ]


def _calls(s: _Src, start: int, n: int) -> list[str]:
    ag, fr, to, du, t = (
        s.ints(1, 40, n),
        s.ints(10**9, 10**10, n),
        s.ints(10**9, 10**10, n),
        s.ints(5, 900, n),
        s.times(n),
    )
    tr, rid = s.text(n, 2, 14), s.hexs(16, n)
    return [
        f"({start + i},'call_{rid[i]}',{ag[i]},'+49{fr[i]}','+49{to[i]}',{du[i]},'{tr[i]}','{t[i]}')"
        for i in range(n)
    ]


def _sessions(s: _Src, start: int, n: int) -> list[str]:
    sid, u, ua, pay, t = (
        s.b64(30, n),
        s.ints(1, 50_000, n),
        s.pick(AGENTS, n),
        s.b64(180, n),
        s.ints(1_700_000_000, 1_760_000_000, n),
    )
    return [
        f"('{sid[i]}',{u[i] if i % 3 else 'NULL'},'10.0.0.1','{ua[i]}','{pay[i]}',{t[i]})" for i in range(n)
    ]


@dataclass(frozen=True)
class Table:
    name: str
    columns: str
    rows: Callable[[_Src, int, int], list[str]]
    weight: float


TABLES = (
    Table(
        "users",
        "`id` bigint unsigned NOT NULL AUTO_INCREMENT,\n  `name` varchar(255) NOT NULL,\n  `email` varchar(255) NOT NULL,\n  `email_verified_at` timestamp NULL DEFAULT NULL,\n  `password` varchar(255) NOT NULL,\n  `remember_token` varchar(100) DEFAULT NULL,\n  `created_at` timestamp NULL DEFAULT NULL,\n  `updated_at` timestamp NULL DEFAULT NULL,\n  PRIMARY KEY (`id`),\n  UNIQUE KEY `users_email_unique` (`email`)",
        _users,
        0.06,
    ),
    Table(
        "orders",
        "`id` bigint unsigned NOT NULL AUTO_INCREMENT,\n  `user_id` bigint unsigned NOT NULL,\n  `status` varchar(32) NOT NULL,\n  `total` decimal(10,2) NOT NULL,\n  `currency` char(3) NOT NULL,\n  `notes` text,\n  `created_at` timestamp NULL DEFAULT NULL,\n  `updated_at` timestamp NULL DEFAULT NULL,\n  PRIMARY KEY (`id`),\n  KEY `orders_user_id_index` (`user_id`)",
        _orders,
        0.14,
    ),
    Table(
        "audits",
        "`id` bigint unsigned NOT NULL AUTO_INCREMENT,\n  `user_id` bigint unsigned DEFAULT NULL,\n  `event` varchar(255) NOT NULL,\n  `auditable_type` varchar(255) NOT NULL,\n  `auditable_id` bigint unsigned NOT NULL,\n  `old_values` text,\n  `new_values` text,\n  `url` text,\n  `ip_address` varchar(45) DEFAULT NULL,\n  `user_agent` varchar(1023) DEFAULT NULL,\n  `created_at` timestamp NULL DEFAULT NULL,\n  PRIMARY KEY (`id`)",
        _audit,
        0.38,
    ),
    Table(
        "calls",
        "`id` bigint unsigned NOT NULL AUTO_INCREMENT,\n  `call_id` varchar(64) NOT NULL,\n  `agent_id` bigint unsigned NOT NULL,\n  `from_number` varchar(32) NOT NULL,\n  `to_number` varchar(32) NOT NULL,\n  `duration_sec` int NOT NULL,\n  `transcript` longtext,\n  `created_at` timestamp NULL DEFAULT NULL,\n  PRIMARY KEY (`id`)",
        _calls,
        0.30,
    ),
    Table(
        "sessions",
        "`id` varchar(255) NOT NULL,\n  `user_id` bigint unsigned DEFAULT NULL,\n  `ip_address` varchar(45) DEFAULT NULL,\n  `user_agent` text,\n  `payload` longtext NOT NULL,\n  `last_activity` int NOT NULL,\n  PRIMARY KEY (`id`)",
        _sessions,
        0.12,
    ),
)
BY_NAME = {t.name: t for t in TABLES}


def _sample_row_len(src: _Src, table: Table) -> int:
    rows = table.rows(src, 1, 64)
    return max(1, sum(len(r) + 1 for r in rows) // len(rows))


def write_dump(out: BinaryIO, rng: np.random.Generator, target_bytes: int) -> None:
    """Write a dump of about ``target_bytes`` to ``out``; deterministic for a given ``rng`` state."""
    src = _Src(rng)
    out.write(HEADER.encode())
    for table in TABLES:
        budget = int(target_bytes * table.weight)
        per_line = max(1, LINE_BYTES // _sample_row_len(src, table))
        out.write(
            (
                f"--\n-- Table structure for table `{table.name}`\n--\n\n"
                f"DROP TABLE IF EXISTS `{table.name}`;\nCREATE TABLE `{table.name}` (\n  {table.columns}\n"
                ") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;\n\n"
                f"--\n-- Dumping data for table `{table.name}`\n--\n\n"
                f"LOCK TABLES `{table.name}` WRITE;\n/*!40000 ALTER TABLE `{table.name}` DISABLE KEYS */;\n"
            ).encode()
        )
        written, next_id = 0, 1
        while written < budget:
            rows = table.rows(src, next_id, per_line)
            line = f"INSERT INTO `{table.name}` VALUES " + ",".join(rows) + ";\n"
            data = line.encode()
            if written + len(data) > budget:
                # Shorten the last line so the table lands near its budget.
                keep = max(1, int(len(rows) * (budget - written) / len(data)))
                data = (f"INSERT INTO `{table.name}` VALUES " + ",".join(rows[:keep]) + ";\n").encode()
            out.write(data)
            written += len(data)
            next_id += per_line
        out.write(f"/*!40000 ALTER TABLE `{table.name}` ENABLE KEYS */;\nUNLOCK TABLES;\n\n".encode())
    out.write(TRAILER.encode())


def new_rows(rng: np.random.Generator, table: str, start_id: int, n: int) -> bytes:
    """``n`` rows for ``table`` as the bytes ``,(..),(..)`` ready to splice into an INSERT line."""
    rows = BY_NAME[table].rows(_Src(rng), start_id, n)
    return ("," + ",".join(rows)).encode()
