"""Web admin tests: its pages in real headless Chromium (Playwright), over the API and
the engine harness on a real uvicorn server."""
