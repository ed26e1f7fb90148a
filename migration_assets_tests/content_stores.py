"""Small content folders in the layouts of real static-site generators and docs sites, written the
way their users write them: Hugo (YAML, TOML and JSON front matter, site-relative ``url``,
``aliases``, nested ``params``), Jekyll (``_posts/YYYY-MM-DD-slug.markdown``, ``permalink``,
dates with offsets, one malformed date), Zola (TOML with ``[taxonomies]`` and ``[extra]``) and a
docs site with data files (JSON, JSON Lines, CSV beside Markdown).

Each builder returns the tree's root; the comments say what a correct migration does with it.
"""

from __future__ import annotations

import json
from pathlib import Path

BODY = (
    "Hugo is a static site generator written in Go, optimized for speed and designed for flexibility.\n\n"
    "With its advanced templating system and fast asset pipelines, Hugo renders a complete site in seconds.\n"
)


def _write(root: Path, rel: str, text: str) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def hugo_site(root: Path) -> Path:
    """A Hugo ``content/`` folder. Every page is valid under the default rules; four of them say
    ``url: /...`` (site-relative), one has JSON front matter, one TOML with a ``[params]`` table."""
    _write(root, "content/_index.md", "---\ntitle: The world's fastest framework for building websites\ndescription: Hugo docs\n---\n\n" + BODY)
    _write(
        root,
        "content/commands/hugo.md",
        "---\ntitle: hugo\nurl: /commands/hugo/\ndate: 2023-07-30T18:31:31-07:00\ncategories: [commands]\ntags: [cli]\n"
        "aliases: [/commands/hugo-old/]\nweight: 10\n---\n\n## hugo\n\nBuild your site.\n",
    )
    _write(
        root,
        "content/commands/hugo_server.md",
        "---\ntitle: hugo server\nurl: /commands/hugo_server/\npublishDate: 2023-07-30\ncategories:\n  - commands\n  - server\n---\n\n"
        "A high performance webserver.\n",
    )
    _write(
        root,
        "content/getting-started/quick-start.md",
        "---\ntitle: Quick start\nlinkTitle: Quick start\ndescription: Learn to create a Hugo site in minutes.\n"
        "categories: [getting started, fundamentals]\nkeywords: [quick start, usage]\nurl: /getting-started/quick-start/\n"
        "params:\n  section: tutorials\n  minversion: 0.112.0\ndate: 2019-01-01\nlastmod: 2023-05-02T10:00:00Z\ndraft: false\n---\n\n" + BODY,
    )
    _write(
        root,
        "content/news/0.120.0-relnotes/index.md",
        '+++\ntitle = "Hugo 0.120.0"\ndate = 2023-10-31T09:00:00+01:00\ncategories = ["releases"]\ntags = ["release"]\nurl = "/news/0.120.0/"\n\n'
        '[params]\nsection = "news"\nimages = ["/images/0.120.png"]\n+++\n\nThis release brings a new ``hugo.toml`` default.\n',
    )
    _write(
        root,
        "content/about.md",
        json.dumps({"title": "About Hugo", "date": "2020-02-02T02:02:02Z", "categories": ["about"], "url": "/about/"}, indent=2)
        + "\n\nHugo is one of the most popular open-source static site generators.\n",
    )
    _write(root, "content/showcase/index.md", "---\ntitle: Showcase\nlayout: showcase\n---\n")  # front matter only
    (root / "static" / "images").mkdir(parents=True)
    (root / "static" / "images" / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))  # skipped: not a content format
    return root


HUGO_RULES = """
# Hugo: permalinks in url, the first category, the publish date, tags and keywords
[mapping]
url = ["url", "aliases[0]"]
category = ["params.section", "categories[0]"]
created_at = ["date", "publishDate", "lastmod"]
tags = ["tags", "keywords"]
legacy_id = ["{path}"]

[[mapping.paths]]
glob = "content/news/**"
set = { type = "release" }
"""


def jekyll_site(root: Path) -> Path:
    """A Jekyll site: posts under ``_posts`` named by date and slug, pages with ``permalink``, and
    one post whose date has a stray year in it (a real value seen in a public site)."""
    _write(
        root,
        "_posts/2023-01-29-welcome-to-jekyll.markdown",
        '---\nlayout: post\ntitle:  "Welcome to Jekyll!"\ndate:   2023-01-29 18:30:22 -0800\ncategories: jekyll update\n---\n'
        "You'll find this post in your `_posts` directory. Go ahead and edit it and re-build the site to see your changes.\n",
    )
    _write(
        root,
        "_posts/2023-02-14-broken-date.markdown",
        "---\nlayout: post\ntitle: A post with a malformed date\ndate: 2023-01-29 18:30:22 2023 -0800\ncategories: [news]\n"
        "permalink: /news/broken-date/\n---\nEverything but the date is fine.\n",
    )
    _write(
        root,
        "_posts/2023-03-01-release-notes.md",
        "---\nlayout: post\ntitle: Release notes\ndate: 2023-03-01 09:00:00 +0100\ncategories: [releases, news]\ntags: [release, v2]\n"
        "author: jane\npermalink: /releases/v2/\n---\n\n# Release notes\n\nVersion 2 is out.\n",
    )
    _write(root, "about.markdown", "---\nlayout: page\ntitle: About\npermalink: /about/\n---\n\nThis is the base Jekyll theme.\n")
    _write(root, "index.markdown", "---\nlayout: home\n---\n")  # no title: the file name is the title
    _write(root, "_config.yml", 'title: Your awesome title\nbaseurl: ""\n')  # skipped: not a content format
    return root


JEKYLL_RULES = """
[mapping]
url = ["permalink", "url"]
category = ["categories[0]", "category"]
legacy_id = ["id", "{slug}"]

[[mapping.paths]]
glob = "_posts/**"
set = { type = "post" }
default = { url = "/{slug}/" }

[validation.url]
policy = "absolute-or-site-relative"
"""


def zola_site(root: Path) -> Path:
    """A Zola ``content/`` folder: TOML front matter with ``[taxonomies]`` and ``[extra]`` tables."""
    _write(
        root,
        "content/blog/first.md",
        '+++\ntitle = "First post"\ndate = 2021-02-03\n\n[taxonomies]\ncategories = ["engineering"]\ntags = ["rust", "zola"]\n\n'
        '[extra]\nteam = "platform"\npermalink = "/blog/first/"\n+++\nThe body of the first post.\n',
    )
    _write(
        root,
        "content/blog/second.md",
        '+++\ntitle = "Second post"\ndate = 2021-03-04T10:00:00Z\n\n[taxonomies]\ntags = ["zola"]\n\n[extra]\nteam = "docs"\n+++\nMore.\n',
    )
    return root


ZOLA_RULES = """
[mapping]
category = ["taxonomies.categories[0]", "extra.team"]
tags = ["taxonomies.tags"]
url = ["extra.permalink"]
type = ["extra.kind"]

[mapping.default]
type = "page"
"""


def docs_site(root: Path) -> Path:
    """A docs site: Markdown pages under ``docs/``, and data files beside them (a JSON array of
    releases, a JSON Lines FAQ, a CSV of contributors)."""
    _write(root, "docs/intro.md", "---\nid: intro\ntitle: Introduction\nslug: /\nsidebar_position: 1\n---\n\nLet's discover the docs.\n")
    _write(
        root,
        "docs/guides/setup.md",
        "---\nsidebar_label: Setup\ndescription: How to set things up\ntags: [setup, install]\n---\n\n# Setting up\n\nRun the installer.\n",
    )
    _write(root, "docs/api/reference.md", "# API reference\n\nEvery endpoint, in order.\n")
    _write(
        root,
        "docs/guides/tabs.mdx",
        "---\ntitle: Using tabs\ntags: [ui]\n---\n\nimport Tabs from '@theme/Tabs';\n\n<Tabs>Pick one.</Tabs>\n",
    )  # MDX: Markdown with JSX, read as Markdown
    _write(
        root,
        "data/releases.json",
        json.dumps(
            [
                {"version": "1.0.0", "date": "2023-05-01", "notes": "First stable release.", "link": "/releases/1.0.0"},
                {"version": "1.1.0", "date": "May 20, 2023", "notes": "Faster builds.", "link": "/releases/1.1.0"},
            ]
        ),
    )
    _write(
        root,
        "data/faq.jsonl",
        '{"question": "How do I install it?", "answer": "Use pip.", "topic": "install"}\n'
        '{"question": "Is there a UI?", "answer": "Yes, the Dagster UI.", "topic": "ui"}\n',
    )
    _write(root, "data/contributors.csv", "name,github,joined\nAda Lovelace,ada,2019-03-01\nGrace Hopper,grace,2020-07-15\n")
    return root


DOCS_RULES = """
[mapping]
url = ["slug", "link", "url"]
legacy_id = ["id", "{path}#{index}"]

[[mapping.paths]]
glob = "docs/**"
set = { type = "doc" }
title = ["title", "sidebar_label"]

[[mapping.paths]]
glob = "data/releases.json"
set = { type = "release", title = "Release {version}" }
content = ["notes"]

[[mapping.paths]]
glob = "data/faq.jsonl"
set = { type = "faq" }
title = ["question"]
content = ["answer"]
category = ["topic"]

[[mapping.paths]]
glob = "*.csv"
set = { type = "person", url = "https://github.com/{github}" }
created_at = ["joined"]
"""
