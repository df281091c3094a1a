"""Bad input, generated: the image API against its own OpenAPI document (schemathesis), uploads
and listings with arbitrary bytes, names and parameters, and the webhook with arbitrary JSON
(hypothesis). Every run is derandomized and bounded, so CI sees the same examples every time.
"""
