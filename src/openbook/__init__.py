"""openbook: answer multiple-choice science exams from Wikipedia.

The path a question takes is visible in the package layout:
exam (load) -> retrieve (passages from an index built by corpus + index) -> readers -> ensemble
-> evaluate (submission, metrics).
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("openbook")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"
