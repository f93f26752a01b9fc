"""The pages the service serves to a browser: the API docs, with nothing loaded from elsewhere.

BentoML's own index page loads a tag-manager script from the internet, which a bank's network
review refuses. `/` and `/docs` serve Swagger UI from the assets BentoML ships under
`/static_content/`, reading the OpenAPI spec at `/docs.json`; the Content-Security-Policy
header (middleware.SecurityHeadersMiddleware) forbids any other origin.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import HTMLResponse

DOCS_PAGE = """<!DOCTYPE html>
<html lang="en">
  <head>
    <meta charset="UTF-8">
    <title>commsrisk API</title>
    <link rel="stylesheet" type="text/css" href="/static_content/swagger-ui.css" />
    <link rel="stylesheet" type="text/css" href="/static_content/index.css" />
  </head>
  <body>
    <div id="swagger-ui"></div>
    <script src="/static_content/swagger-ui-bundle.js" charset="UTF-8"></script>
    <script src="/static_content/swagger-ui-standalone-preset.js" charset="UTF-8"></script>
    <script src="/static_content/swagger-initializer.js" charset="UTF-8"></script>
  </body>
</html>
"""
"""Swagger UI from BentoML's local assets; its initializer reads ./docs.json."""


async def docs_page(request: Request) -> HTMLResponse:
    """GET / and GET /docs: the interactive API docs."""
    return HTMLResponse(DOCS_PAGE)
