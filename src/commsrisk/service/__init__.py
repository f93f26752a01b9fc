"""The HTTP service: the BentoML service (`app`) and the ASGI middleware in front of it (`middleware`).

Serve it with `bentoml serve commsrisk.service.app:CommsriskService` or `commsrisk serve`.
"""
