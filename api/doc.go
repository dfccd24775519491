// Package api serves greenq's HTTP API (/v1), its OpenAPI document, health
// and readiness probes, Prometheus metrics and the dashboard.
//
// The API reads and writes through a Store (implemented by *queue.Store);
// every job belongs to the tenant of the bearer token that submitted it and
// is invisible (404, absent from lists) to other tenants. Errors are one
// JSON shape, {"error": {"code", "message", "field"}}, with the status taken
// from greenq.HTTPStatus. Bulk submit, POST /v1/jobs:batch (or POST
// /v1/jobs with {"jobs": [...]}), validates every job before storing any, so
// a refused job (the error names jobs[i].field) stores nothing.
//
// Before any handler, a guard (guard.go) refuses what a web page of another
// origin could make a browser send: a body that is not application/json
// (415), a foreign Origin or a cross-site Sec-Fetch-Site unless the origin
// is in Config.AllowedOrigins (403), a non-loopback Host on a server without
// tokens (403, against DNS rebinding), and credentials in query strings.
//
// The Python client (python/greenq.py), a demo notebook and the dashboard's
// assets (web/) live beside the handlers so one test suite keeps them in
// step with the OpenAPI document (openapi.json).
package api
