"""A labeled search set: a small company knowledge base (help-desk articles, HR policies, product
pages, engineering runbooks) and queries whose right answer is known.

- ``PARAPHRASES``: each says what one document says, in other words: no content word (nor a
  word sharing its first five letters) appears in both (``shared_words`` checks it).
- ``NAMES``: exact names and codes that occur in one document only.

``write_store`` lays it out as a legacy store (Markdown with front matter, JSON, CSV), and
``benchmarks/bench_search_quality.py`` reports each provider's top-1 hit rate on it.
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

from migration_assets.search.fulltext import STOPWORDS

DOCS: dict[str, tuple[str, str]] = {
    "kb-password": (
        "Resetting a forgotten password",
        "Open the sign-in page and choose the link below the form. We email a one-time link that stays valid for thirty minutes; follow it and pick a new passphrase of at least twelve characters.",
    ),
    "kb-vpn": (
        "Connecting from home",
        "Install the WireGuard client, import the profile named corp-gw-7 and keep the tunnel up while you work outside the office network.",
    ),
    "kb-printer": (
        "Printer jams on the third floor",
        "When paper gets stuck in the HP LaserJet near the kitchen, open tray 2, pull the crumpled sheet out slowly and close the rear door before printing again.",
    ),
    "kb-laptop-slow": (
        "Laptop running slowly",
        "If your notebook crawls, restart it, close browser tabs you do not need and let the overnight updates finish installing.",
    ),
    "kb-wifi": ("Guest wireless access", "Visitors join the network called Lobby-Guest; reception hands out a daily code printed on a slip."),
    "kb-mfa": (
        "Two-step verification",
        "Besides your passphrase, confirm every sign-in with the authenticator app on your phone. Lost the device? Call the service desk to enrol a replacement.",
    ),
    "hr-leave": (
        "Annual leave",
        "Staff earn twenty-five days of paid holiday per calendar year. Book days off in the HR portal at least two weeks ahead; unused days expire in March.",
    ),
    "hr-parental": ("Parental leave", "New mothers and fathers may take up to sixteen weeks off at full salary after a birth or an adoption."),
    "hr-expenses": (
        "Claiming expenses",
        "Submit receipts for travel, meals and hotels within thirty days through Concur. Finance reimburses approved claims with the next payroll.",
    ),
    "hr-remote": (
        "Working remotely",
        "Employees may work from their residence up to three days a week if their manager agrees; core hours are ten to four.",
    ),
    "hr-sick": (
        "Sickness absence",
        "Tell your manager before nine on the first morning you are ill. From the fourth day onwards a doctor's note is required.",
    ),
    "hr-onboarding": (
        "First week for new joiners",
        "Newcomers collect a badge at reception, meet their buddy, and finish the compliance modules by Friday.",
    ),
    "prod-espresso": (
        "Espresso machine Barista Pro 9000",
        "A 15 bar pump and a steam wand for café drinks in your kitchen, with a built-in grinder and a 2 litre water tank.",
    ),
    "prod-skillet": (
        "Cast iron skillet",
        "Pre-seasoned pan that goes from stove to oven and lasts for generations when dried and oiled after washing.",
    ),
    "prod-shoes": (
        "Trail running shoes Zephyrine",
        "Grippy outsole and a rock plate for muddy mountain paths; the upper drains water quickly after river crossings.",
    ),
    "prod-tent": ("Two-person backpacking tent", "Weighs 1.4 kg, pitches in three minutes and keeps out wind and rain above the tree line."),
    "prod-headphones": (
        "Noise-cancelling headphones",
        "Over-ear cans that silence aircraft engines and open-plan chatter for thirty hours on one charge.",
    ),
    "prod-kettle": ("Electric kettle", "Boils a litre of water in under three minutes and switches itself off when done."),
    "prod-bike-lock": ("Bicycle lock", "A hardened steel U-shackle with two keys that thieves cannot cut with bolt cutters."),
    "eng-deploy": (
        "Deploying a release",
        "Merge to main, wait for the pipeline to go green, then promote the build from staging to production with the release button.",
    ),
    "eng-rollback": (
        "Undoing a bad release",
        "If production misbehaves after a release, redeploy the previous tag from the pipeline history; the database stays as it is.",
    ),
    "eng-oncall": ("On-call rota", "Engineers take the pager for one week in turn. Hand over on Monday at noon with a summary of open incidents."),
    "eng-disk": (
        "Disk almost full alert",
        "When a volume reaches ninety percent, delete old log archives under /var/log/app and resize the volume if that is not enough.",
    ),
    "eng-certs": (
        "Renewing TLS certificates",
        "Certificates expire every ninety days; the renewal job runs nightly, and a failed renewal pages the on-call engineer.",
    ),
    "eng-backup": (
        "Database backups",
        "A full dump runs every night at two and is kept for thirty-five days in the offsite bucket; test a restore once a quarter.",
    ),
    "fac-parking": ("Car park", "Spaces in the basement are allocated by lottery each quarter; electric vehicles charge in bays 1 to 8."),
    "fac-canteen": ("Canteen opening times", "Hot lunches are served from noon to two; the salad bar and coffee counter open at eight."),
    "fac-bikes": ("Cycling to work", "Secure racks and showers are next to the gym entrance; the company lends folding bikes for errands."),
    "fin-invoice": (
        "Where is my invoice?",
        "Invoice INV-2023-0042 and later ones are in the billing portal under Documents, as PDF and as e-invoice.",
    ),
    "fin-refund": ("Refunds", "Money goes back to the original card within ten working days after we receive the returned item."),
    "fin-vat": (
        "Tax on cross-border orders",
        "Orders shipped to other EU countries carry the VAT rate of the destination country under the OSS scheme.",
    ),
    "sec-phishing": (
        "Suspicious emails",
        "Never click links in unexpected messages asking for credentials; forward them to the security mailbox and delete them.",
    ),
    "sec-badge": (
        "Lost building badge",
        "Report a missing access card to reception at once so it can be blocked; a replacement costs nothing the first time.",
    ),
    "sec-laptop-theft": ("Stolen laptop", "If your computer is taken, report it to the police and to the service desk, who will wipe it remotely."),
    # written after the ranking was chosen on the documents above, and kept apart to check it: HELD_OUT
    "lib-renew": (
        "Renewing borrowed books",
        "Loans can be extended twice online from your account page unless another reader has reserved the title.",
    ),
    "lib-fines": ("Overdue charges", "Each day a loan is late adds twenty cents, capped at five euros per item; children's cards are exempt."),
    "lib-card": ("Getting a library card", "Bring a photo ID and proof of address to any branch desk; membership is free for residents."),
    "lib-rooms": ("Booking a study room", "Quiet rooms for up to six people can be reserved for two hours at a time through the website."),
    "lib-ebooks": ("Digital lending", "Download novels and audiobooks to a tablet with the Libby app, signing in with your card number."),
    "lib-printing": ("Printing and scanning", "Public machines print black and white at ten cents a page; scans can be sent to your email for free."),
    "app-2fa-reset": (
        "Lost authenticator on the dashboard",
        "An admin of your workspace can clear your second factor under Members; you then enrol a new device at next login.",
    ),
    "app-export": (
        "Exporting your data",
        "Settings, then Data, then Export creates a ZIP archive of all projects, delivered by email within an hour.",
    ),
    "app-billing-seats": (
        "Adding seats to a plan",
        "Owners raise the number of licensed users under Billing; the extra charge is prorated to the renewal date.",
    ),
    "app-api-keys": (
        "API tokens",
        "Generate a personal token under Developer settings; it inherits your permissions and can be revoked at any moment.",
    ),
    "app-sso": (
        "Single sign-on with Okta",
        "Enterprise workspaces connect an identity provider over SAML so staff log in with their company account.",
    ),
    "app-delete-account": (
        "Closing your account",
        "Deletion is permanent after a thirty-day grace period, during which support can still restore everything.",
    ),
    "app-outage": ("Service status", "Incidents and maintenance windows are announced on status.example-app.io with updates every thirty minutes."),
    "app-dark-mode": ("Changing the theme", "Switch between the light and the dark appearance under Preferences, or follow your operating system."),
    "cook-sourdough": (
        "Sourdough starter",
        "Feed the flour and water culture daily at room temperature until it doubles within six hours, then bake.",
    ),
    "cook-rice": ("Fluffy rice", "Rinse the grains until the water runs clear, simmer covered for twelve minutes and let them rest off the heat."),
    "cook-knife": (
        "Sharpening a chef's knife",
        "Hold the blade at fifteen degrees against a whetstone and draw it across in even strokes on both sides.",
    ),
    "cook-freezer": ("Freezing leftovers", "Cool cooked food within two hours, pack it flat in labelled bags and eat it within three months."),
    "cook-eggs": ("Soft-boiled eggs", "Lower them into boiling water for six and a half minutes, then into ice so the yolk stays runny."),
    "cook-stock": ("Chicken stock", "Simmer roasted bones with onion, carrot and celery for four hours, skimming the foam, then strain."),
}

PARAPHRASES: list[tuple[str, str]] = [
    ("I can't remember what I type to log in", "kb-password"),
    ("how do I reach internal systems from my house", "kb-vpn"),
    ("pages of A4 wedged inside the copier", "kb-printer"),
    ("my computer is sluggish", "kb-laptop-slow"),
    ("internet for people who come to see us", "kb-wifi"),
    ("approving logins with a code on my mobile", "kb-mfa"),
    ("how much vacation am I entitled to", "hr-leave"),
    ("staying home with a newborn", "hr-parental"),
    ("getting money back for a business trip", "hr-expenses"),
    ("can I do my job from my flat", "hr-remote"),
    ("what to do if I feel unwell and stay in bed", "hr-sick"),
    ("what happens when someone starts at the company", "hr-onboarding"),
    ("appliance that makes coffee", "prod-espresso"),
    ("heavy frying utensil", "prod-skillet"),
    ("footwear for jogging off-road", "prod-shoes"),
    ("shelter for camping in the hills", "prod-tent"),
    ("quiet audio for flights", "prod-headphones"),
    ("heat up tea quickly", "prod-kettle"),
    ("stop someone stealing my cycle", "prod-bike-lock"),
    ("ship new code to customers", "eng-deploy"),
    ("revert a broken version", "eng-rollback"),
    ("who answers emergencies at night", "eng-oncall"),
    ("server storage nearly exhausted", "eng-disk"),
    ("https encryption running out", "eng-certs"),
    ("copies of our data in case of disaster", "eng-backup"),
    ("where do I put my automobile", "fac-parking"),
    ("when can I eat at the office", "fac-canteen"),
    ("pedal to the office", "fac-bikes"),
    ("how long until the cash for a parcel I mailed reappears on my statement", "fin-refund"),
    ("sales levy for foreign customers in europe", "fin-vat"),
    ("fake mail trying to trick me", "sec-phishing"),
    ("I misplaced my pass for the doors", "sec-badge"),
    ("someone took my notebook", "sec-laptop-theft"),
]

HELD_OUT: list[tuple[str, str]] = [
    ("keep a novel for longer", "lib-renew"),
    ("penalty for bringing things back after they were due", "lib-fines"),
    ("how do I sign up to borrow", "lib-card"),
    ("somewhere silent to revise for exams with classmates", "lib-rooms"),
    ("read stories on my e-reader", "lib-ebooks"),
    ("cost to make paper copies", "lib-printing"),
    ("my phone with the verification codes is gone", "app-2fa-reset"),
    ("download a backup of everything we stored", "app-export"),
    ("pay for more colleagues to use the tool", "app-billing-seats"),
    ("credentials for scripts to talk to the service programmatically", "app-api-keys"),
    ("use our corporate directory to authenticate", "app-sso"),
    ("remove my profile for good", "app-delete-account"),
    ("is the site down right now", "app-outage"),
    ("make the screen black at night", "app-dark-mode"),
    ("wild yeast for homemade bread", "cook-sourdough"),
    ("cook basmati so it is not sticky", "cook-rice"),
    ("my kitchen cutlery has gone dull", "cook-knife"),
    ("storing uneaten meals in the cold", "cook-freezer"),
    ("how long in the pot for a gooey centre at breakfast", "cook-eggs"),
    ("broth from poultry carcass", "cook-stock"),
]

NAMES: list[tuple[str, str]] = [
    ("corp-gw-7", "kb-vpn"),
    ("INV-2023-0042", "fin-invoice"),
    ("Zephyrine", "prod-shoes"),
    ("Barista Pro 9000", "prod-espresso"),
    ("Lobby-Guest", "kb-wifi"),
    ("Concur", "hr-expenses"),
    ("LaserJet", "kb-printer"),
    ("WireGuard", "kb-vpn"),
    ("/var/log/app", "eng-disk"),
    ("OSS scheme", "fin-vat"),
]


def content_words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z0-9]+", text.lower()) if w not in STOPWORDS and len(w) > 1}


def shared_words(query: str, doc: str) -> set[str]:
    """Content words the query shares with the document (also counted: a common first five letters)."""
    title, content = DOCS[doc]
    words = content_words(title + " " + content)
    prefixes = {w[:5] for w in words if len(w) >= 5}
    return {w for w in content_words(query) if w in words or (len(w) >= 5 and w[:5] in prefixes)}


def write_store(root: Path) -> dict[str, str]:
    """The documents as a legacy store: HR as Markdown, products as CSV, the rest as JSON;
    returns each document's legacy id."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "hr").mkdir(exist_ok=True)
    ids = {}
    for key, (title, content) in DOCS.items():
        if key.startswith("hr-"):
            (root / "hr" / f"{key}.md").write_text(f"---\nid: {key}\ntitle: {title}\n---\n{content}\n", encoding="utf-8")
        ids[key] = key
    with open(root / "products.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "title", "content"])
        for key, (title, content) in DOCS.items():
            if key.startswith("prod-"):
                writer.writerow([key, title, content])
    rest = [{"id": key, "title": title, "content": content} for key, (title, content) in DOCS.items() if not key.startswith(("hr-", "prod-"))]
    (root / "knowledge_base.json").write_text(json.dumps(rest, indent=1), encoding="utf-8")
    return ids
