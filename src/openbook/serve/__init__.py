"""openbook as a service: the answer path behind HTTP (FastAPI), one model in memory, requests served
in arrival order from a bounded queue."""
