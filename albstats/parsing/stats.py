"""What a read found, per file and in total: lines, rows, malformed lines (with the first few reasons),
damage and skipped files. The report's data-quality section and every command's summary read these."""

from __future__ import annotations

from dataclasses import dataclass, field

#: Malformed lines kept as examples, per file and in a summary.
MAX_BAD_EXAMPLES = 5


@dataclass(slots=True)
class FileStats:
    """What reading one file found."""

    name: str
    kind: str = "access"
    lines: int = 0  # non-blank lines read
    rows: int = 0  # lines parsed into rows
    bad_lines: int = 0
    bad_examples: list[tuple[int, str]] = field(default_factory=list)  # (line number, reason)
    error: str | None = None  # damage that stopped the file early (corrupt gzip), good lines kept
    skipped: str | None = None  # why the file was not read at all


@dataclass
class ParseStats:
    """Totals over a read, for summaries and the report's data-quality section."""

    files: list[FileStats] = field(default_factory=list)

    @property
    def lines(self) -> int:
        return sum(f.lines for f in self.files)

    @property
    def rows(self) -> int:
        return sum(f.rows for f in self.files)

    @property
    def bad_lines(self) -> int:
        return sum(f.bad_lines for f in self.files)

    @property
    def errors(self) -> list[str]:
        return [f"{f.name}: {f.error}" for f in self.files if f.error]

    @property
    def files_read(self) -> int:
        return sum(1 for f in self.files if not f.skipped)

    def bad_examples(self, limit: int = MAX_BAD_EXAMPLES) -> list[str]:
        out: list[str] = []
        for f in self.files:
            for ln, reason in f.bad_examples:
                if len(out) >= limit:
                    return out
                out.append(f"{f.name}:{ln}: {reason}")
        return out

    def summary(self) -> str:
        s = f"{self.files_read} files, {self.lines} lines, {self.rows} rows, {self.bad_lines} malformed lines"
        skipped = sum(1 for f in self.files if f.skipped)
        if skipped:
            s += f", {skipped} files skipped"
        if self.errors:
            s += f", {len(self.errors)} damaged files"
        return s
