"""The item catalog: read from CSV/TSV, JSON lines and Parquet, refused with the file and row named when malformed,
stored with a version and checked by its checksum."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest

from elcrec.model.artifact import CATALOG, ArtifactError, ManifestInfo, Store, load_artifact
from elcrec.model.catalog import Catalog, CatalogError, item_categories, read_catalog
from tests.support.service import ITEM_IDS, tiny_model

MOVIES = "id,title,genre,studio\ni1,Toy Story,Animation|Comedy,Pixar\ni2,Heat,Action,\ni3,,Drama ,Warner\n"


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_a_csv_catalog_reads_titles_and_multi_valued_fields(tmp_path: Path) -> None:
    cat = read_catalog(write(tmp_path / "movies.csv", MOVIES))
    assert cat.ids == ("i1", "i2", "i3") and cat.titles == ("Toy Story", "Heat", None)
    assert cat.fields == ("genre", "studio")
    assert cat.values["genre"] == (("Animation", "Comedy"), ("Action",), ("Drama",))
    assert cat.values["studio"] == (("Pixar",), (), ("Warner",))
    assert cat.record(0) == {"id": "i1", "title": "Toy Story", "genre": ["Animation", "Comedy"], "studio": ["Pixar"]}



def test_fields_are_picked_and_renamed_so_typed_headers_read_as_they_are(tmp_path: Path) -> None:
    # RecBole's atomic files name columns "name:type"; ':' separates fields in requests, so they are renamed
    typed = write(tmp_path / "ml.item.tsv", "item_id:token\tmovie_title:token_seq\tyear:token\tclass:token_seq\n"
                                            "1\tToy Story\t1995\tAnimation Comedy\n2\tHeat\t1995\tAction\n")
    with pytest.raises(CatalogError, match=r"--field NAME=COLUMN"):
        read_catalog(typed, "item_id:token", "movie_title:token_seq", " ")
    cat = read_catalog(typed, "item_id:token", "movie_title:token_seq", " ", ["genre=class:token_seq"])
    assert cat.fields == ("genre",) and cat.values["genre"] == (("Animation", "Comedy"), ("Action",))
    assert cat.titles == ("Toy Story", "Heat")
    with pytest.raises(CatalogError, match=r"no column 'kind' for the field 'genre'.*class:token_seq"):
        read_catalog(typed, "item_id:token", "movie_title:token_seq", " ", ["genre=kind"])

def test_tsv_jsonl_and_parquet_catalogs_read_alike(tmp_path: Path) -> None:
    tsv = write(tmp_path / "m.tsv", "item\tname\tgenre\n7\tUp\tAnimation;Family\n8\tCars\tAnimation\n")
    cat = read_catalog(tsv, id_column="item", title_column="name", multi_sep=";")
    assert cat.ids == ("7", "8") and cat.values["genre"] == (("Animation", "Family"), ("Animation",))
    lines = [{"id": 7, "title": "Up", "genre": ["Animation", "Family"], "year": 2009},
             {"id": "8", "title": "Cars", "genre": "Animation", "year": None}]
    jsonl = write(tmp_path / "m.jsonl", "".join(json.dumps(r) + "\n" for r in lines))
    got = read_catalog(jsonl)
    assert got.ids == ("7", "8") and got.values["genre"] == (("Animation", "Family"), ("Animation",))
    assert got.values["year"] == (("2009",), ())
    parquet = tmp_path / "m.parquet"
    with duckdb.connect() as con:
        con.execute("COPY (SELECT * FROM (VALUES ('7', 'Up', ['Animation', 'Family']), ('8', 'Cars', ['Animation'])) "
                    f"t(id, title, genre)) TO '{parquet}' (FORMAT parquet)")
    assert read_catalog(parquet).values == cat.values


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("a.csv", "item,title\n1,x\n", "has no id column 'id' (its columns: item, title)"),
        ("b.csv", "id,title\ni1,x\n,y\n", "row 2 (line 3): the id ('id') is empty"),
        ("c.csv", "id,title\ni1,x\ni2,y\ni1,z\n", "row 3 (line 4): id 'i1' again (first on row 1)"),
        ("d.jsonl", '{"id": "i1", "title": "x"}\n{"id": "i2", "title": 5}\n', "row 2: the title ('title') of 'i2' is not text: 5"),
        ("e.jsonl", '{"id": "i1", "title": "x", "genre": {"a": 1}}\n', "row 1: field 'genre' of 'i1' holds"),
        ("f.xml", "<items/>", "cannot tell the catalog's format"),
        ("g.csv", "id,title,title\n", "has no items"),
    ],
)
def test_a_malformed_catalog_is_refused_naming_file_and_row(tmp_path: Path, name: str, text: str, expected: str) -> None:
    path = write(tmp_path / name, text)
    with pytest.raises(CatalogError) as err:
        read_catalog(path)
    assert str(path) in str(err.value) and expected in str(err.value)


def test_a_catalog_is_stored_with_a_version_and_its_tampering_refused(tmp_path: Path) -> None:
    cat = read_catalog(write(tmp_path / "movies.csv", MOVIES))
    version = Store(tmp_path / "store").write_version(tiny_model(), ITEM_IDS, ManifestInfo(), catalog=cat)
    manifest = Store(version.parent).manifest(version.name)
    assert CATALOG in manifest.files
    assert manifest.catalog == {"file": CATALOG, "items": 3, "fields": ["genre", "studio"], "source": "movies.csv",
                                   "known_items": 3}
    assert load_artifact(version).read_catalog() == cat
    (version / CATALOG).write_text((version / CATALOG).read_text().replace("Heat", "Cold"))
    with pytest.raises(ArtifactError, match="catalog.jsonl is corrupt"):
        load_artifact(version)


def test_a_version_without_catalog_loads_as_before(tmp_path: Path) -> None:
    art = load_artifact(Store(tmp_path / "store").write_version(tiny_model(), ITEM_IDS, ManifestInfo()))
    assert art.read_catalog() is None and art.manifest.catalog is None


def test_a_catalog_that_knows_none_of_the_items_is_refused(tmp_path: Path) -> None:
    cat = read_catalog(write(tmp_path / "other.csv", "id,title\n1,x\n2,y\n"))
    with pytest.raises(ArtifactError, match=r"knows none of the model's 40 items .*\['i1', 'i2', 'i3'\].*\['1', '2'\]"):
        Store(tmp_path / "store").write_version(tiny_model(), ITEM_IDS, ManifestInfo(), catalog=cat)


def test_item_categories_cover_the_models_rows() -> None:
    cat = Catalog(("i2", "zz"), ("B", "Z"), ("genre",), {"genre": (("a", "b"), ("c",))}, "x")
    cats = item_categories(cat, [None, "i1", "i2", "i3", None])
    assert cats.known.tolist() == [False, True, False] and cats.titles == (None, "B", None)
    assert [cats.values[v] for v in cats.indices[cats.indptr[1]:cats.indptr[2]]] == [("genre", "a"), ("genre", "b")]


def test_the_stored_form_keeps_any_text(tmp_path: Path) -> None:
    lines = [{"id": "i1", "title": "two\u2028lines\x85 and \"quotes\"", "genre": ["é", "a|b"]}]
    cat = read_catalog(write(tmp_path / "odd.jsonl", "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in lines)))
    version = Store(tmp_path / "store").write_version(tiny_model(), ITEM_IDS, ManifestInfo(), catalog=cat)
    assert load_artifact(version).read_catalog() == cat
