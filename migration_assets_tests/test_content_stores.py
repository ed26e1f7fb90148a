"""Real content stores whole: static-site and docs-site layouts migrated through the CLI under the
default rules and under rules files, per-rule reports, a bad rules file refused, and the records
a rule rejected brought in by an incremental run once the rule is loosened."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from sqlalchemy import select, text

from migration_assets.store.database import get_engine
from migration_assets.store.models import ContentItem, RecordWarning, RejectedRecord
from migration_assets_tests.content_stores import (
    DOCS_RULES,
    HUGO_RULES,
    JEKYLL_RULES,
    ZOLA_RULES,
    docs_site,
    hugo_site,
    jekyll_site,
    zola_site,
)
from migration_assets_tests.test_cli import dagster_home, run_cli

STRICT = '[validation.url]\npolicy = "absolute"\n\n[validation.created_at]\nunparseable = "reject"\n'


def write_rules(tmp_path: Path, text_: str, name: str = "rules.toml") -> Path:
    path = tmp_path / name
    path.write_text(text_, encoding="utf-8")
    return path


def migrate(source: Path, tmp_path: Path, url: str, *args: str) -> dict:
    done = run_cli("migrate", "--source", str(source), "--backup", str(tmp_path / "backup"), *args, home=tmp_path / "home", url=url)
    assert done.returncode == 0, done.stderr
    return json.loads((tmp_path / "backup" / "migration_report.json").read_text())


def rows(url: str) -> dict[str, ContentItem]:
    with get_engine(url).connect() as conn:
        return {row.source_path + "#" + row.legacy_id: row for row in conn.execute(select(ContentItem)).all()}


def by_path(url: str) -> dict[str, ContentItem]:
    return {row.source_path: row for row in rows(url).values()}


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return dagster_home(tmp_path)


def test_hugo_pages_with_site_relative_urls_and_any_front_matter_all_arrive_under_the_default_rules(tmp_path, home, sqlite_url):
    source = hugo_site(tmp_path / "site")
    report = migrate(source, tmp_path, sqlite_url)
    assert report["totals"]["migrated"] == 7 and report["totals"]["rejected"] == 0 and report["totals"]["skipped"] == 1
    assert report["by_rule"] == {} and report["rejected_records"] == []
    pages = by_path(sqlite_url)
    assert pages["content/commands/hugo.md"].url == "/commands/hugo/"
    assert pages["content/news/0.120.0-relnotes/index.md"].url == "/news/0.120.0/"
    about = pages["content/about.md"]  # JSON front matter
    assert (about.title, about.url, about.content) == ("About Hugo", "/about/", "Hugo is one of the most popular open-source static site generators.")
    # without a mapping, the generator's own names land in metadata only
    quick = pages["content/getting-started/quick-start.md"]
    assert quick.category is None and quick.metadata["categories"] == ["getting started", "fundamentals"]
    assert quick.metadata["params"] == {"section": "tutorials", "minversion": "0.112.0"}
    assert report["rules"]["file"] is None and report["rules"]["hash"]


def test_a_malformed_date_costs_the_record_nothing_but_its_date_which_is_kept_raw(tmp_path, home, sqlite_url):
    source = jekyll_site(tmp_path / "site")
    report = migrate(source, tmp_path, sqlite_url)
    assert report["totals"]["rejected"] == 0 and report["totals"]["records"]["inserted"] == 5
    pages = by_path(sqlite_url)
    broken = pages["_posts/2023-02-14-broken-date.markdown"]
    assert broken.title == "A post with a malformed date" and broken.content == "Everything but the date is fine."
    assert broken.created_at is None and broken.metadata["date"] == "2023-01-29 18:30:22 2023 -0800"
    welcome = pages["_posts/2023-01-29-welcome-to-jekyll.markdown"]
    assert welcome.created_at.replace(tzinfo=None).isoformat() == "2023-01-30T02:30:22"  # -0800 converted to UTC
    with get_engine(sqlite_url).connect() as conn:
        warning = conn.execute(select(RecordWarning)).one()
    assert warning.source_path == "_posts/2023-02-14-broken-date.markdown" and warning.rules == ["created_at.unparseable"]
    assert warning.legacy_id == "_posts/2023-02-14-broken-date.markdown#0" and "2023-01-29 18:30:22 2023 -0800" in warning.reason
    assert report["by_rule"] == {"created_at.unparseable": {"rejected": 0, "warned": 1}}
    summary = (tmp_path / "backup" / "migration_summary.txt").read_text()
    assert "created_at.unparseable" in summary and "Rules: the built-in defaults" in summary


def test_a_rules_file_turns_site_relative_urls_and_bad_dates_back_into_rejections(tmp_path, home, sqlite_url):
    strict = write_rules(tmp_path, STRICT)
    hugo = migrate(hugo_site(tmp_path / "hugo"), tmp_path, sqlite_url, "--rules", str(strict))
    relative = {r["path"] for r in hugo["rejected_records"]}
    assert relative == {
        "content/commands/hugo.md",
        "content/commands/hugo_server.md",
        "content/getting-started/quick-start.md",
        "content/news/0.120.0-relnotes/index.md",
        "content/about.md",
    }
    assert all(r["rules"] == ["url.policy"] and r["stage"] == "validate" for r in hugo["rejected_records"])
    assert hugo["by_rule"] == {"url.policy": {"rejected": 5, "warned": 0}} and hugo["rules"]["file"] == str(strict)
    jekyll = migrate(jekyll_site(tmp_path / "jekyll"), tmp_path, f"sqlite:///{tmp_path / 'jekyll.db'}", "--rules", str(strict))
    assert [(r["path"], r["rules"]) for r in jekyll["rejected_records"]] == [("_posts/2023-02-14-broken-date.markdown", ["created_at.unparseable"])]


def test_hugo_mapping_fills_url_category_date_and_tags_from_hugos_own_names(tmp_path, home, sqlite_url):
    report = migrate(hugo_site(tmp_path / "site"), tmp_path, sqlite_url, "--rules", str(write_rules(tmp_path, HUGO_RULES)))
    assert report["totals"]["rejected"] == 0
    pages = by_path(sqlite_url)
    quick = pages["content/getting-started/quick-start.md"]
    assert (quick.url, quick.category, quick.tags, quick.legacy_id) == (
        "/getting-started/quick-start/", "tutorials", ["quick start", "usage"], "content/getting-started/quick-start.md",
    )  # fmt: skip
    assert quick.created_at.date().isoformat() == "2019-01-01"
    server = pages["content/commands/hugo_server.md"]
    assert (server.category, server.created_at.date().isoformat()) == ("commands", "2023-07-30")  # categories[0], publishDate
    news = pages["content/news/0.120.0-relnotes/index.md"]
    assert (news.content_type, news.category, news.tags) == ("release", "news", ["release"])  # TOML [params] section
    assert news.created_at.replace(tzinfo=None).isoformat() == "2023-10-31T08:00:00"
    assert pages["content/commands/hugo.md"].metadata["aliases"] == ["/commands/hugo-old/"]  # mapped or not, kept


def test_jekyll_mapping_reads_permalinks_categories_and_slugs(tmp_path, home, sqlite_url):
    report = migrate(jekyll_site(tmp_path / "site"), tmp_path, sqlite_url, "--rules", str(write_rules(tmp_path, JEKYLL_RULES)))
    assert report["totals"]["rejected"] == 0
    items = {row.legacy_id: row for row in rows(sqlite_url).values()}
    assert set(items) == {"welcome-to-jekyll", "broken-date", "release-notes", "about", "index"}
    notes = items["release-notes"]
    assert (notes.url, notes.category, notes.content_type, notes.tags) == ("/releases/v2/", "releases", "post", ["release", "v2"])
    assert notes.created_at.replace(tzinfo=None).isoformat() == "2023-03-01T08:00:00"
    assert (items["welcome-to-jekyll"].url, items["welcome-to-jekyll"].category) == ("/welcome-to-jekyll/", "jekyll update")  # a default url
    assert (items["about"].url, items["about"].content_type) == ("/about/", None)
    assert items["broken-date"].created_at is None and items["broken-date"].metadata["permalink"] == "/news/broken-date/"


def test_zola_mapping_reads_taxonomies_and_extra_tables(tmp_path, home, sqlite_url):
    migrate(zola_site(tmp_path / "site"), tmp_path, sqlite_url, "--rules", str(write_rules(tmp_path, ZOLA_RULES)))
    pages = by_path(sqlite_url)
    first, second = pages["content/blog/first.md"], pages["content/blog/second.md"]
    assert (first.category, first.tags, first.url, first.content_type) == ("engineering", ["rust", "zola"], "/blog/first/", "page")
    assert (second.category, second.tags, second.created_at.date().isoformat()) == ("docs", ["zola"], "2021-03-04")
    assert first.metadata["extra"] == {"team": "platform", "permalink": "/blog/first/"} and first.metadata["date"] == "2021-02-03"


def test_a_docs_site_maps_each_kind_of_data_file_by_glob(tmp_path, home, sqlite_url):
    report = migrate(docs_site(tmp_path / "site"), tmp_path, sqlite_url, "--rules", str(write_rules(tmp_path, DOCS_RULES)))
    assert report["totals"]["rejected"] == 0 and report["totals"]["records"]["inserted"] == 10
    items = {row.legacy_id: row for row in rows(sqlite_url).values()}
    assert (items["intro"].title, items["intro"].url, items["intro"].content_type) == ("Introduction", "/", "doc")
    setup = items["docs/guides/setup.md#0"]
    assert (setup.title, setup.tags, setup.content_type) == ("Setup", ["setup", "install"], "doc")
    assert items["docs/api/reference.md#0"].title == "API reference"  # the first heading
    tabs = items["docs/guides/tabs.mdx#0"]
    assert (tabs.title, tabs.source_format, tabs.content_type) == ("Using tabs", "markdown", "doc") and "<Tabs>" in tabs.content
    release = items["data/releases.json#1"]
    assert (release.title, release.content, release.url, release.content_type) == ("Release 1.1.0", "Faster builds.", "/releases/1.1.0", "release")
    assert release.created_at.date().isoformat() == "2023-05-20"  # "May 20, 2023"
    faq = items["data/faq.jsonl#1"]
    assert (faq.title, faq.content, faq.category, faq.content_type) == ("How do I install it?", "Use pip.", "install", "faq")
    person = items["data/contributors.csv#0"]
    assert (person.title, person.url, person.content_type, person.created_at.date().isoformat()) == (
        "Ada Lovelace", "https://github.com/ada", "person", "2019-03-01",
    )  # fmt: skip


@pytest.mark.parametrize("command", ["migrate", "validate", "check-incremental"])
def test_a_bad_rules_file_ends_the_command_with_one_line_and_exit_2_before_anything_is_read(tmp_path, home, command):
    source = hugo_site(tmp_path / "site")
    bad = write_rules(tmp_path, '[validation.url]\npolicy = "relative"\n')
    database = tmp_path / "never.db"
    args = {
        "migrate": ["--backup", str(tmp_path / "backup")],
        "validate": ["--output", str(tmp_path / "validation.json")],
        "check-incremental": [],
    }[command]
    done = run_cli(command, "--source", str(source), *args, "--rules", str(bad), home=home, url=f"sqlite:///{database}")
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and "validation.url.policy: unknown URL policy 'relative'" in done.stderr
    assert not database.exists() and not (tmp_path / "backup").exists() and not (tmp_path / "validation.json").exists()


def test_the_rules_file_comes_from_the_environment_too(tmp_path, home, sqlite_url):
    strict = write_rules(tmp_path, STRICT)
    env_before = os.environ.get("MIGRATION_RULES_FILE")
    os.environ["MIGRATION_RULES_FILE"] = str(strict)
    try:
        report = migrate(hugo_site(tmp_path / "site"), tmp_path, sqlite_url)
    finally:
        os.environ.pop("MIGRATION_RULES_FILE")
        if env_before is not None:
            os.environ["MIGRATION_RULES_FILE"] = env_before
    assert report["rules"]["file"] == str(strict) and report["config"]["rules_file"] == str(strict)
    assert report["by_rule"]["url.policy"]["rejected"] == 5


def test_validate_and_the_dry_run_count_rejections_and_warnings_per_rule(tmp_path, home, sqlite_url):
    source = jekyll_site(tmp_path / "site")
    hugo_site(source / "hugo")
    strict = write_rules(tmp_path, '[validation.url]\npolicy = "absolute"\n')
    output = tmp_path / "validation.json"
    done = run_cli("validate", "--source", str(source), "--output", str(output), "--rules", str(strict), "--verbose", home=home)
    assert done.returncode == 0, done.stderr
    report = json.loads(output.read_text())
    assert report["by_rule"] == {"url.policy": {"rejected": 5, "warned": 0}, "created_at.unparseable": {"rejected": 0, "warned": 1}}
    assert report["rules"]["file"] == str(strict)
    assert any(r["rule"] == "url.policy" and r["value"] == "absolute" for r in report["rules"]["validation"])
    assert report["totals"]["warned_records"] == 1 and "[warning] _posts/2023-02-14-broken-date.markdown" in done.stdout
    assert "url.policy" in done.stdout and f"Rules: {strict}" in done.stdout
    dry_args = ("--backup", str(tmp_path / "dry"), "--dry-run", "--rules", str(strict))
    dry = run_cli("migrate", "--source", str(source), *dry_args, home=home, url=sqlite_url)
    assert dry.returncode == 0, dry.stderr
    planned = json.loads((tmp_path / "dry" / "dry_run_report.json").read_text())
    assert planned["by_rule"] == report["by_rule"] and planned["plan"]["reject"] == 5


def test_loosening_a_rule_brings_in_exactly_the_records_it_rejected_and_rewrites_nothing_else(tmp_path, home, target_url):
    source = hugo_site(tmp_path / "site")
    jekyll_site(source / "blog")
    strict = write_rules(tmp_path, STRICT)
    first = migrate(source, tmp_path, target_url, "--rules", str(strict))
    rejected = {(r["path"], r["index"]) for r in first["rejected_records"]}
    assert len(rejected) == 6  # 5 site-relative urls, 1 bad date
    before = {key: (row.id, row.updated_at, row.run_id, row.record_hash) for key, row in rows(target_url).items()}

    # the same rules again: nothing to do
    incremental = ("migrate", "--source", str(source), "--backup", str(tmp_path / "backup"), "--incremental")
    same = run_cli(*incremental, "--rules", str(strict), home=home, url=target_url)
    assert same.returncode == 0 and "Nothing to migrate" in same.stdout

    # loosened (the defaults): check-incremental says which files, the incremental run brings exactly those records in
    check = run_cli("check-incremental", "--source", str(source), home=home, url=target_url)
    assert check.returncode == 0 and "6 to re-evaluate" in check.stdout and "0 remapped" in check.stdout
    loosened = migrate(source, tmp_path, target_url, "--incremental")
    assert loosened["totals"]["records"]["inserted"] == 6 and loosened["totals"]["records"]["updated"] == 0
    assert loosened["totals"]["files"] == 6 and loosened["totals"]["records"]["rejected"] == 0
    after = rows(target_url)
    assert {key: (row.id, row.updated_at, row.run_id, row.record_hash) for key, row in after.items() if key in before} == before
    new = {(row.source_path, 0) for key, row in after.items() if key not in before}
    assert new == rejected
    assert loosened["by_rule"] == {"created_at.unparseable": {"rejected": 0, "warned": 1}}

    # nothing changed since: an incremental run has nothing to do
    again = run_cli(*incremental, home=home, url=target_url)
    assert again.returncode == 0 and "Nothing to migrate" in again.stdout

    # tightened again: the warned record is re-evaluated and reported, never deleted
    dates = write_rules(tmp_path, STRICT.split("\n\n")[1], "dates.toml")
    tightened = migrate(source, tmp_path, target_url, "--incremental", "--rules", str(dates))
    broken = "blog/_posts/2023-02-14-broken-date.markdown"
    assert [(r["path"], r["rules"]) for r in tightened["rejected_records"]] == [(broken, ["created_at.unparseable"])]
    assert "the version migrated earlier stays in the target" in tightened["rejected_records"][0]["reason"]
    assert broken in by_path(target_url)
    with get_engine(target_url).connect() as conn:
        assert conn.execute(select(RejectedRecord.rules).where(RejectedRecord.run_id == tightened["run_id"])).scalars().all() == [
            ["created_at.unparseable"]
        ]


def test_a_changed_mapping_remaps_every_file_in_place_on_the_next_incremental_run(tmp_path, home, sqlite_url):
    source = hugo_site(tmp_path / "site")
    migrate(source, tmp_path, sqlite_url)
    ids = {path: row.id for path, row in by_path(sqlite_url).items()}
    mapping = write_rules(tmp_path, '[mapping]\ncategory = ["categories[0]"]\n')
    check = run_cli("check-incremental", "--source", str(source), "--rules", str(mapping), home=home, url=sqlite_url)
    assert "7 remapped" in check.stdout
    report = migrate(source, tmp_path, sqlite_url, "--incremental", "--rules", str(mapping))
    assert report["totals"]["records"]["updated"] == 5 and report["totals"]["records"]["unchanged"] == 2  # two pages have no categories
    pages = by_path(sqlite_url)
    assert {path: row.id for path, row in pages.items()} == ids
    assert pages["content/commands/hugo.md"].category == "commands"


def test_a_run_records_its_rules_and_the_ui_shows_the_rules_in_force(tmp_path, sqlite_url, instance):
    from migration_assets_tests.test_pipeline import materialize

    strict = write_rules(tmp_path, STRICT)
    result = materialize(hugo_site(tmp_path / "site"), tmp_path / "backup", sqlite_url, instance, rules_file=str(strict))
    assert result is not None and result.success
    with get_engine(sqlite_url).connect() as conn:
        recorded = conn.execute(text("select rules from migration_runs")).scalar_one()
    from migration_assets.rules import load_rules

    recorded = json.loads(recorded)
    assert recorded == load_rules(strict).summary() and recorded["file"] == str(strict)
    assert {"rule": "url.policy", "value": "absolute", "severity": "error", "message": "url is not an http(s) or ftp URL"} in recorded["validation"]
    report = json.loads((tmp_path / "backup" / "migration_report.json").read_text())
    assert report["rules"] == recorded  # the report shows every rule the run was under
    validated = next(m for m in result.asset_materializations_for_node("ingest_records") if m.asset_key.path == ["validated_records"]).metadata
    assert validated["rules_file"].value == str(strict)
    assert validated["by_rule"].data == {"url.policy": {"rejected": 5, "warned": 0}}
    url_column = next(c for c in validated["dagster/column_schema"].schema.columns if c.name == "url")
    assert "url.policy (error): url is not an http(s) or ftp URL" in url_column.constraints.other
