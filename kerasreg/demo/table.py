"""The demo's results table: one aligned text line per result row."""

HEADERS = ("method", "test acc", "NLL", "ECE", "train s")


def format_table(rows):
    """One aligned text table of the result rows."""
    cells = [
        (
            r["method"],
            f"{r['test_accuracy']:.4f}",
            f"{r['nll']:.4f}",
            f"{r['ece']:.4f}",
            f"{r['train_time_s']:.1f}",
        )
        for r in rows
    ]
    widths = [max(len(c[i]) for c in [HEADERS, *cells]) for i in range(5)]

    def line(c):
        first = c[0].ljust(widths[0])
        rest = [c[i].rjust(widths[i]) for i in range(1, 5)]
        return "  ".join([first, *rest])

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(HEADERS), rule, *map(line, cells)])
