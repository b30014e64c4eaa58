"""The cutting of a (untrusted) mariadb-dump stream into per-table parts (no server needed).

The dumps are mariadb-dump's layout, written out here; ``test_mysql_parallel`` loads real ones. Every
dump that is not cut exactly where a single client would end a statement must fall back (Unsplittable).
"""

from __future__ import annotations

import pytest

from safehold.sources.mysql import split

PREAMBLE = (
    b"/*M!999999\\- enable the sandbox mode */ \n"
    + b"""-- MariaDB dump 10.19  Distrib 10.11.19-MariaDB, for debian-linux-gnu (x86_64)
--
-- Host: 127.0.0.1    Database: d
-- ------------------------------------------------------
-- Server version\t10.11.19-MariaDB-0+deb12u1

/*!40101 SET @OLD_CHARACTER_SET_CLIENT=@@CHARACTER_SET_CLIENT */;
/*!40101 SET NAMES utf8mb4 */;
/*!40103 SET @OLD_TIME_ZONE=@@TIME_ZONE */;
/*!40103 SET TIME_ZONE='+00:00' */;
/*!40014 SET @OLD_UNIQUE_CHECKS=@@UNIQUE_CHECKS, UNIQUE_CHECKS=0 */;
/*!40014 SET @OLD_FOREIGN_KEY_CHECKS=@@FOREIGN_KEY_CHECKS, FOREIGN_KEY_CHECKS=0 */;
/*!40101 SET @OLD_SQL_MODE=@@SQL_MODE, SQL_MODE='NO_AUTO_VALUE_ON_ZERO' */;
/*!40111 SET @OLD_SQL_NOTES=@@SQL_NOTES, SQL_NOTES=0 */;
"""
)


def table(name: bytes, rows: bytes = b"(1,'a'),\n(2,0x00FF)", trigger: bytes = b"") -> bytes:
    q = b"`" + name.replace(b"`", b"``") + b"`"
    return (
        b"\n--\n-- Table structure for table " + q + b"\n--\n\n"
        b"DROP TABLE IF EXISTS " + q + b";\n"
        b"/*!40101 SET @saved_cs_client     = @@character_set_client */;\n"
        b"/*!40101 SET character_set_client = utf8mb4 */;\n"
        b"CREATE TABLE " + q + b" (\n  `id` int(11) NOT NULL,\n  `s` blob DEFAULT 'x;\n-- y',\n"
        b"  PRIMARY KEY (`id`)\n) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;\n"
        b"/*!40101 SET character_set_client = @saved_cs_client */;\n\n"
        b"--\n-- Dumping data for table " + q + b"\n--\n\n"
        b"LOCK TABLES " + q + b" WRITE;\n"
        b"/*!40000 ALTER TABLE " + q + b" DISABLE KEYS */;\n"
        b"INSERT INTO " + q + b" VALUES\n" + rows + b";\n"
        b"/*!40000 ALTER TABLE " + q + b" ENABLE KEYS */;\n"
        b"UNLOCK TABLES;\n" + trigger
    )


def trigger_block(on: bytes, body: bytes = b"SET NEW.s = 'x'") -> bytes:
    return (
        b"/*!50003 SET @saved_cs_client      = @@character_set_client */ ;\n"
        b"/*!50003 SET character_set_client  = utf8mb3 */ ;\n"
        b"/*!50003 SET @saved_sql_mode       = @@sql_mode */ ;\n"
        b"/*!50003 SET sql_mode              = 'STRICT_TRANS_TABLES' */ ;\n"
        b"DELIMITER ;;\n"
        b"/*!50003 CREATE*/ /*!50017 DEFINER=`root`@`127.0.0.1`*/ /*!50003 TRIGGER tr BEFORE INSERT ON "
        + on
        + b" FOR EACH ROW "
        + body
        + b" \n*/;;\n"
        b"DELIMITER ;\n"
        b"/*!50003 SET sql_mode              = @saved_sql_mode */ ;\n"
        b"/*!50003 SET character_set_client  = @saved_cs_client */ ;\n"
    )


TAIL = b"""
--
-- Dumping routines for database 'd'
--
DELIMITER ;;
CREATE DEFINER=`root`@`127.0.0.1` FUNCTION `f`() RETURNS int(11)
RETURN 1 /* a comment */ + 1 # another
;;
DELIMITER ;
/*!40103 SET TIME_ZONE=@OLD_TIME_ZONE */;

-- Dump completed
"""


def dump(*tables: bytes, tail: bytes = TAIL, preamble: bytes = PREAMBLE) -> bytes:
    return preamble + b"".join(tables) + tail


def scan(data: bytes, step: int = 0) -> split.Layout:
    step = step or len(data)
    return split.scan(data[i : i + step] for i in range(0, len(data), step))


def parts(data: bytes, layout: split.Layout) -> list[bytes]:
    return [data[s.start : s.end] for s in layout.sections]


@pytest.mark.parametrize("step", [0, 1, 7, 64])
def test_cuts_before_each_table_header(step: int) -> None:
    data = dump(table(b"a"), table(b"b", trigger=trigger_block(b"b")), table(b"c"))
    layout = scan(data, step)
    assert [s.name for s in layout.sections] == ["a", "b", "c"]
    assert layout.size == len(data)
    assert layout.preamble == data[: layout.sections[0].start] and layout.preamble.startswith(PREAMBLE)
    assert all(p.startswith(b"\n--\n-- Table structure for table `") for p in parts(data, layout))
    assert [a.end for a in layout.sections[:-1]] == [b.start for b in layout.sections[1:]]
    assert data[layout.tail_start :] == TAIL  # routines and the closing SET go after every table
    assert b"TRIGGER tr" in parts(data, layout)[1]
    # what the trigger's section saved is given back to the tail's client
    assert (
        layout.prelude
        == b"SET @saved_cs_client = @@character_set_client;\nSET @saved_sql_mode = @@sql_mode;\n"
    )


def test_statements_are_recorded_as_a_client_sends_them() -> None:
    """Each statement from its first byte to its delimiter (left out), comments before it and LOCK /
    UNLOCK TABLES not among them; the trigger's with its ;; delimiter."""
    data = dump(table(b"a"), table(b"b", trigger=trigger_block(b"b")))
    layout = scan(data, 11)
    pre = [layout.preamble[x:y] for x, y in layout.preamble_statements]
    assert pre[0] == b"/*!40101 SET @OLD_CHARACTER_SET_CLIENT=@@CHARACTER_SET_CLIENT */"
    assert len(pre) == 8 and all(p.startswith(b"/*!") and p.endswith(b"*/") for p in pre)
    a, b = layout.sections
    texts = [data[x:y] for x, y in zip(a.statements[::2], a.statements[1::2], strict=True)]
    assert texts == [
        b"DROP TABLE IF EXISTS `a`",
        b"/*!40101 SET @saved_cs_client     = @@character_set_client */",
        b"/*!40101 SET character_set_client = utf8mb4 */",
        texts[3],
        b"/*!40101 SET character_set_client = @saved_cs_client */",
        b"/*!40000 ALTER TABLE `a` DISABLE KEYS */",
        b"INSERT INTO `a` VALUES\n(1,'a'),\n(2,0x00FF)",
        b"/*!40000 ALTER TABLE `a` ENABLE KEYS */",
    ]
    assert texts[3].startswith(b"CREATE TABLE `a` (") and texts[3].endswith(b"DEFAULT CHARSET=utf8mb4")
    last = data[b.statements[-6] : b.statements[-5]]
    assert last.startswith(b"/*!50003 CREATE*/") and last.endswith(b"\n*/")  # the trigger, without ;;
    assert (
        data[b.statements[-2] : b.statements[-1]]
        == b"/*!50003 SET character_set_client  = @saved_cs_client */ "
    )


def test_fake_boundaries_inside_values_and_names_are_not_cuts() -> None:
    """Strings (escaped as mariadb-dump writes them, or with raw line breaks as a trigger's body may hold
    them) and names that contain header-looking text stay inside their table's part."""
    fake = b"\\n--\\n-- Table structure for table `x`\\n--\\n;DROP TABLE z;"
    weird = b"a``b -- Table structure for table ``x"
    body = b"SET NEW.s = CONCAT('x\n--\n-- Table structure for table `q`\n;;\nDELIMITER ;\n', NEW.s)"
    data = dump(
        table(weird.replace(b"``", b"`"), rows=b"(1,'" + fake + b"'),\n(2,'\\');\\n--\\n')"),
        table(b"t2", trigger=trigger_block(b"t2", body)),
    )
    for step in (0, 1, 5, 100):
        layout = scan(data, step)
        assert [s.name for s in layout.sections] == ["a`b -- Table structure for table `x", "t2"]
        first, second = parts(data, layout)
        assert fake in first and body in second


@pytest.mark.parametrize("step", [0, 1, 9, 50, 4096])
def test_raw_line_breaks_in_a_value_never_make_a_cut(step: int) -> None:
    """A hostile writer's row with raw line breaks and a fake header inside a string: either the row
    stays whole inside its table's part, or nothing is cut."""
    value = b"'a\n--\n-- Table structure for table `b`\n--\n\nDROP TABLE IF EXISTS `b`;\n'"
    data = dump(table(b"a", rows=b"(1," + value + b"),\n(2,'x')"), table(b"b"))
    try:
        layout = scan(data, step)
    except split.Unsplittable:
        return
    assert [s.name for s in layout.sections] == ["a", "b"]
    assert value in parts(data, layout)[0]


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        # a statement a single client would run once, or with other effects, before the tables
        (lambda d: d.replace(b"/*!40111", b"DROP DATABASE other;\n/*!40111", 1), "follows the views"),
        (lambda d: d.replace(b"FOREIGN_KEY_CHECKS=0", b"FOREIGN_KEY_CHECKS=1"), "foreign key"),
        (lambda d: d.replace(b"NO_AUTO_VALUE_ON_ZERO", b"ANSI_QUOTES"), "follows the views"),
        # a row that is not literal values: order between the parts would matter
        (lambda d: d.replace(b"(2,0x00FF)", b"(2,(SELECT COUNT(*) FROM b))", 1), "follows the views"),
        (lambda d: d.replace(b"(2,0x00FF)", b"(2,SLEEP(1))", 1), "follows the views"),
        # a client command or a changed delimiter in a table's part
        (lambda d: d.replace(b"UNLOCK TABLES;\n", b"UNLOCK TABLES;\n\\! id\n", 1), "follows the views"),
        (lambda d: d.replace(b"UNLOCK TABLES;\n", b"UNLOCK TABLES;\nDELIMITER //\n", 1), "follows the views"),
        (lambda d: d.replace(b"UNLOCK TABLES;\n", b"UNLOCK TABLES;\nDELIMITER ;;\n", 1), "no statement ends"),
        # session state a single client would carry into the next table
        (lambda d: d.replace(b"UNLOCK TABLES;\n", b"UNLOCK TABLES;\nSET NAMES latin1;\n", 1), "follows"),
        (lambda d: d.replace(b"= @saved_cs_client */", b"= latin1 */", 1), "session variables"),
        # rows of another table, a table created from a query, a trigger on another table
        (lambda d: d.replace(b"INSERT INTO `a`", b"INSERT INTO `b`", 1), "follows the views"),
        (lambda d: d.replace(b"ENGINE=InnoDB", b"ENGINE=InnoDB SELECT * FROM b", 1), "session variables"),
        (lambda d: d.replace(b"BEFORE INSERT ON b", b"BEFORE INSERT ON a", 1), "on another table"),
        # a header that names no table, the same table twice
        (lambda d: d.replace(b"table `b`\n--\n\nDROP", b"table `b\n--\n\nDROP", 1), "no statement ends"),
        (lambda d: d.replace(b"`b`", b"`a`"), "twice"),
        # not mariadb-dump's layout at all
        (lambda d: b"CREATE TABLE t (id int);\nINSERT INTO t VALUES (1);\n", "no table sections"),
        (lambda d: d[:-1], "line break"),
    ],
)
def test_hostile_dumps_fall_back_to_one_client(change: object, reason: str) -> None:
    data = dump(table(b"a"), table(b"b", trigger=trigger_block(b"b")))
    scan(data)  # the unchanged dump is cut
    with pytest.raises(split.Unsplittable, match=reason):
        scan(change(data))  # type: ignore[operator]


def test_table_after_the_tail_falls_back() -> None:
    with pytest.raises(split.Unsplittable, match="follows the views"):
        scan(dump(table(b"a"), tail=TAIL + table(b"late")))


def test_strip_definers_output_is_cut() -> None:
    """What :func:`definer_filter` leaves of a trigger (``/*!50017 */``) is still a trigger of its table."""
    from safehold.sources.mysql.restore import definer_filter

    data = b"".join(definer_filter([dump(table(b"a", trigger=trigger_block(b"`a`")))]))
    assert b"DEFINER" not in data.split(b"Dumping routines")[0]
    assert [s.name for s in scan(data).sections] == ["a"]


def many_inserts() -> bytes:
    """Table ``t`` with its rows in three INSERT statements (as mariadb-dump writes a big table)."""
    one = b"(1,'a'),\n(2,0x00FF)"
    rows = b"".join(b"INSERT INTO `t` VALUES\n(%d,'r;\\n'),\n(1%d,NULL);\n" % (i, i) for i in range(3))
    return table(b"t", rows=one).replace(b"INSERT INTO `t` VALUES\n" + one + b";\n", rows)


@pytest.mark.parametrize("step", [0, 5, 64])
def test_rows_any_connection_may_send_are_marked(step: int) -> None:
    """The INSERTs of a table that may go to any connection, in any order, between its head (up to the
    DISABLE KEYS) and its tail (ENABLE KEYS, triggers, their SET statements)."""
    data = dump(many_inserts(), table(b"u", trigger=trigger_block(b"u")))
    t, u = scan(data, step).sections
    texts = [data[x:y] for x, y in zip(t.statements[::2], t.statements[1::2], strict=True)]
    assert (t.first_row, t.rows_end) == (6, 9)
    assert texts[5] == b"/*!40000 ALTER TABLE `t` DISABLE KEYS */" and texts[9].endswith(b"ENABLE KEYS */")
    assert all(x.startswith(b"INSERT INTO `t` VALUES\n(") for x in texts[6:9])
    assert (u.first_row, u.rows_end) == (6, 7)  # the trigger comes after the rows


@pytest.mark.parametrize(
    "change",
    [
        # rows whose order may matter, or a session state another connection does not have
        lambda d: d.replace(b"INSERT INTO `t` VALUES", b"REPLACE INTO `t` VALUES"),
        lambda d: d.replace(b"INSERT INTO `t` VALUES", b"INSERT IGNORE INTO `t` VALUES"),
        lambda d: d.replace(b"INSERT INTO `t` VALUES", b"INSERT INTO `t` (`id`, `s`) VALUES"),
        # the character set of the CREATE TABLE restored only after the rows
        lambda d: d.replace(b"/*!40101 SET character_set_client = @saved_cs_client */;\n\n--\n-- Dumping",
                            b"\n--\n-- Dumping", 1).replace(
            b"/*!40000 ALTER TABLE `t` ENABLE KEYS */;",
            b"/*!40101 SET character_set_client = @saved_cs_client */;\n/*!40000 ALTER TABLE `t` ENABLE KEYS */;"),
    ],
)  # fmt: skip
def test_rows_that_may_not_be_reordered_stay_with_the_head(change: object) -> None:
    data = change(dump(many_inserts()))  # type: ignore[operator]
    (t,) = scan(data).sections
    assert len(t.statements) >= 2 * 9 and (t.first_row, t.rows_end) == (-1, -1)


def test_a_statement_between_rows_ends_the_shared_run() -> None:
    data = dump(many_inserts())
    second = data.index(b"INSERT INTO `t` VALUES\n(1,")
    data = data[:second] + b"/*!40000 ALTER TABLE `t` ENABLE KEYS */;\n" + data[second:]
    (t,) = scan(data).sections
    assert (t.first_row, t.rows_end) == (6, 7)  # the rest run after it, in order
