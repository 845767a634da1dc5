"""The baseline and the ground truth for `cargo bench --bench feeds`.

Usage: python3 benches/feedparser_feeds.py MANIFEST.json  (pip install feedparser)

For every source in the manifest (written by benches/feeds.rs), this script

- counts the entries of the source's reference document (its undamaged UTF-8 text)
  independently of herald: the `item`/`entry` elements ElementTree finds when the
  reference is well-formed XML, the `items` of a JSON document, and otherwise the
  opening and closing `<item>`/`<entry>` tags;
- fetches the source's URL with feedparser, as a Python feed reader's loop would, and
  records how many entries it returned and whether it flagged the document (bozo);
- times feedparser over HTTP on the whole corpus and on the same bytes from memory.

Prints one JSON object on stdout.
"""
import json
import re
import statistics
import sys
import time
import xml.etree.ElementTree as ET

import feedparser

RUNS = 3


def reference_entries(source):
    """(well_formed, entries, complete) of the undamaged reference document."""
    path = source.get("reference")
    if not path:
        return (True, 0, 0)
    data = open(path, "rb").read()
    text = data.decode(source.get("reference_encoding") or "utf-8")
    if path.endswith(".json"):
        try:
            items = json.loads(text).get("items") or []
            return (True, len(items), len(items))
        except ValueError:
            n = len(re.findall(r'"id"\s*:', text))
            return (False, n, n)
    declared = re.sub(r'(<\?xml[^>]*?)\s+encoding=["\'][^"\']*["\']', r"\1", text, count=1)
    try:
        root = ET.fromstring(declared.encode("utf-8"))
        n = sum(1 for e in root.iter() if e.tag.rsplit("}", 1)[-1] in ("item", "entry"))
        return (True, n, n)
    except ET.ParseError:
        opened = len(re.findall(r"<(?:item|entry)[\s>]", text))
        closed = len(re.findall(r"</(?:item|entry)>", text))
        return (False, opened, closed)


def main() -> None:
    manifest = json.load(open(sys.argv[1]))
    sources = {}
    for s in manifest["sources"]:
        well_formed, entries, complete = reference_entries(s)
        sources[s["name"]] = {
            "reference_well_formed": well_formed,
            "entries": entries,
            "recoverable": max(complete - s.get("lost", 0), 0),
        }

    def over_http():
        return [feedparser.parse(s["url"]) for s in manifest["sources"]]

    bodies = [
        (open(s["file"], "rb").read(), s["content_type"]) if s.get("file") else None
        for s in manifest["sources"]
    ]

    def from_memory():
        return [
            feedparser.parse(b[0], response_headers={"content-type": b[1]})
            for b in bodies
            if b is not None
        ]

    results = over_http()  # warm-up, and the entries counted
    for s, d in zip(manifest["sources"], results):
        sources[s["name"]]["feedparser_entries"] = len(d.entries)
        sources[s["name"]]["feedparser_bozo"] = bool(d.get("bozo"))
        sources[s["name"]]["feedparser_status"] = d.get("status")
    http, memory = [], []
    for _ in range(RUNS):
        started = time.perf_counter()
        over_http()
        http.append(time.perf_counter() - started)
        started = time.perf_counter()
        from_memory()
        memory.append(time.perf_counter() - started)
    print(
        json.dumps(
            {
                "feedparser": feedparser.__version__,
                "sources": sources,
                "http_seconds": http,
                "memory_seconds": memory,
                "median_http": statistics.median(http),
                "median_memory": statistics.median(memory),
            }
        )
    )


if __name__ == "__main__":
    main()
