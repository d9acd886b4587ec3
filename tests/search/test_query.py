"""Parsing combined queries: terms, signs, weights, quotes, photo paths."""

from __future__ import annotations

from pathlib import Path

import pytest

from photoembed.search.query import QueryError, QueryTerm, parse_query


def kinds(terms: list[QueryTerm]) -> list[tuple[str, str, float, int]]:
    return [(t.kind, t.value, t.weight, t.sign) for t in terms]


def test_plain_text_is_one_term(tmp_path: Path) -> None:
    assert kinds(parse_query("a dog on the beach", cwd=tmp_path)) == [("text", "a dog on the beach", 1.0, 1)]


def test_command_line_words_are_joined(tmp_path: Path) -> None:
    terms = parse_query(["golden", "retriever", "-", "people"], cwd=tmp_path)
    assert kinds(terms) == [("text", "golden retriever", 1.0, 1), ("text", "people", 1.0, -1)]


def test_plus_minus_and_weights(tmp_path: Path) -> None:
    (tmp_path / "pool.jpg").write_bytes(b"x")
    terms = parse_query('"2:golden retriever" + ./pool.jpg - people + 0.5:sunset', cwd=tmp_path)
    assert kinds(terms) == [
        ("text", "golden retriever", 2.0, 1),
        ("image", "./pool.jpg", 1.0, 1),
        ("text", "people", 1.0, -1),
        ("text", "sunset", 0.5, 1),
    ]
    assert terms[1].path == tmp_path / "pool.jpg"
    assert terms[2].factor == -1.0


def test_weight_on_a_photo_and_before_a_quote(tmp_path: Path) -> None:
    (tmp_path / "x.jpg").write_bytes(b"x")
    terms = parse_query(["0.5:./x.jpg", "+", '3:"red car"'], cwd=tmp_path)
    assert kinds(terms) == [("image", "./x.jpg", 0.5, 1), ("text", "red car", 3.0, 1)]


def test_hyphenated_words_are_not_operators(tmp_path: Path) -> None:
    terms = parse_query("black-and-white t-shirt -dog +cat", cwd=tmp_path)
    assert kinds(terms) == [("text", "black-and-white t-shirt -dog +cat", 1.0, 1)]


def test_quotes_protect_operators(tmp_path: Path) -> None:
    terms = parse_query("""dog + "rock - paper" - 'a + b'""", cwd=tmp_path)
    assert kinds(terms) == [("text", "dog", 1.0, 1), ("text", "rock - paper", 1.0, 1), ("text", "a + b", 1.0, -1)]


def test_paths_with_spaces(tmp_path: Path) -> None:
    photo = tmp_path / "my holiday" / "beach day 1.png"
    photo.parent.mkdir()
    photo.write_bytes(b"x")
    # As the shell hands it over (one argv word), and quoted inside a query string.
    assert parse_query([str(photo)], cwd=tmp_path)[0].path == photo
    terms = parse_query('"my holiday/beach day 1.png" - "sea"', cwd=tmp_path)
    assert kinds(terms) == [("image", "my holiday/beach day 1.png", 1.0, 1), ("text", "sea", 1.0, -1)]
    # Unquoted words between operators form one term, spaces and all.
    assert parse_query(f"{photo} + dog", cwd=tmp_path)[0].path == photo


def test_existing_file_without_path_look_is_a_photo(tmp_path: Path) -> None:
    (tmp_path / "dog.webp").write_bytes(b"x")
    assert parse_query("dog.webp", cwd=tmp_path)[0].kind == "image"


def test_a_folder_named_like_the_text_stays_text(tmp_path: Path) -> None:
    (tmp_path / "dog").mkdir()
    assert parse_query("dog", cwd=tmp_path)[0].kind == "text"


@pytest.mark.parametrize("query", ["./missing.jpg", "missing.heic", "/nowhere/at/all.png", "~/no-such-photo.jpg"])
def test_missing_photo_is_an_error(tmp_path: Path, query: str) -> None:
    with pytest.raises(QueryError, match="query photo not found"):
        parse_query(query, cwd=tmp_path)


def test_folder_given_as_photo(tmp_path: Path) -> None:
    (tmp_path / "pics").mkdir()
    with pytest.raises(QueryError, match="is a folder"):
        parse_query("./pics", cwd=tmp_path)


def test_leading_minus_and_text_starting_with_number(tmp_path: Path) -> None:
    terms = parse_query("- rain + 1:10:30 train", cwd=tmp_path)
    assert kinds(terms) == [("text", "rain", 1.0, -1), ("text", "10:30 train", 1.0, 1)]


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("dog +", "ends with an operator"),
        ("dog + - cat", "between two operators"),
        ("- dog", "at least one term to add"),
        ("0:dog", "above 0"),
        ('2:""', "empty"),
    ],
)
def test_bad_queries(tmp_path: Path, query: str, message: str) -> None:
    with pytest.raises(QueryError, match=message):
        parse_query(query, cwd=tmp_path)


def test_unmatched_quote_is_literal(tmp_path: Path) -> None:
    (tmp_path / "it's.jpg").write_bytes(b"x")
    assert parse_query(["it's.jpg"], cwd=tmp_path)[0].kind == "image"
    assert kinds(parse_query("rock 'n roll", cwd=tmp_path)) == [("text", "rock 'n roll", 1.0, 1)]
