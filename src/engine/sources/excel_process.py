"""Excel workbooks are read in a child process with a memory limit, so that no file can take the reader down.

The Excel readers (Rust) build a sheet as one block from its first to its last cell and abort the process when
an allocation fails: a 1.5 KB workbook with one cell at XFD1048576 asks for 512 GiB. In a child whose address
space is capped (RLIMIT_AS), such a file ends the child alone, and the parent reports it as the input's problem.

    python -P engine/sources/excel_process.py

(run as a file, importing only excel_read beside it and the readers: it starts in ~0.4 s, not the ~1.3 s
the engine package would take) reads one pickled request on stdin, `(kind, path, args, max_cells,
memory_bytes, out_dir)`, sets its own limit first, and answers one pickled `("ok", payload)` or
`("problem", message)` on stdout. A sheet's rows go to `out_dir/sheet.arrow` (Arrow IPC) rather than through
the pipe; the parent reads and deletes them.
"""

from __future__ import annotations

import importlib.util
import pickle
import resource
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

SHEET = "sheet"
OTHERS = "others"
ANSWER_LIMIT = 1 << 30  # bytes of an answer the parent reads (other sheets' cells come through the pipe)


def main() -> None:
    """The child: limit memory, read what the request asks, answer on stdout (plain values only)."""
    kind, path, args, max_cells, memory_bytes, out_dir = pickle.load(sys.stdin.buffer)
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    # After the limit, so the readers' own allocations count too; by its file, so the engine is not imported.
    spec = importlib.util.spec_from_file_location("excel_read", Path(__file__).with_name("excel_read.py"))
    assert spec is not None and spec.loader is not None
    excel_read = sys.modules["excel_read"] = importlib.util.module_from_spec(spec)  # dataclasses look it up
    spec.loader.exec_module(excel_read)

    try:
        excel_read.check_dimensions(path, max_cells)
        if kind == SHEET:
            read = excel_read.read_sheet(path, sheet=args["sheet"], header_row=args["header_row"])
            read.frame.write_ipc(Path(out_dir) / "sheet.arrow")
            payload: Any = ([(s.name, s.hidden) for s in read.sheets], read.sheet, read.typed_cells)
        else:
            payload = excel_read.read_other_sheets(path, args["names"])
        answer: tuple[str, Any] = ("ok", payload)
    except excel_read.ReadProblem as exc:
        answer = ("problem", str(exc))
    pickle.dump(answer, sys.stdout.buffer, protocol=pickle.HIGHEST_PROTOCOL)
    sys.stdout.flush()


class ChildFailed(Exception):
    """The child ended without an answer (out of memory, or a crash in a reader)."""


def read_in_child(kind: str, path: Path, args: dict[str, Any], *, max_cells: int, memory_bytes: int,
                  out_dir: Path) -> tuple[str, Any]:
    """Run one read in a child; its answer, or ChildFailed. Blocking: call it from a thread."""
    request = pickle.dumps((kind, str(path), args, max_cells, memory_bytes, str(out_dir)))
    ended = subprocess.run([sys.executable, "-P", __file__], input=request,
                           capture_output=True, check=False)
    if ended.returncode != 0 or not ended.stdout or len(ended.stdout) > ANSWER_LIMIT:
        raise ChildFailed(f"exit code {ended.returncode}: {ended.stderr[-2000:].decode(errors='replace')}")
    answer: tuple[str, Any] = pickle.loads(ended.stdout)  # our own child's answer: plain values
    return answer


def new_out_dir() -> Path:
    """A private folder for one read's rows."""
    return Path(tempfile.mkdtemp(prefix="rowloom-excel-"))


if __name__ == "__main__":
    main()
