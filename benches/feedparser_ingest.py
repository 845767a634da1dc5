"""Times Python feedparser on a feed file: the baseline herald's ingest is compared with.

Usage: python3 benches/feedparser_ingest.py FEED.xml  (pip install feedparser)
Prints the median of 5 runs as `median_seconds=...`.
"""
import statistics
import sys
import time

import feedparser

def main() -> None:
    data = open(sys.argv[1], "rb").read()
    feedparser.parse(data)  # warm-up
    times = []
    for _ in range(5):
        started = time.perf_counter()
        parsed = feedparser.parse(data)
        times.append(time.perf_counter() - started)
    print(f"entries={len(parsed.entries)}")
    print(f"feedparser={feedparser.__version__}")
    print(f"median_seconds={statistics.median(times):.4f}")

if __name__ == "__main__":
    main()
