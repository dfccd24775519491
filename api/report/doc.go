// Package report turns finished jobs' carbon receipts into reports: totals
// and breakdowns by region, tenant, tag, GPU model and month; flags for GPUs
// that sat mostly idle; and renderings for a terminal (table), scripts (json,
// csv), documents (markdown, html with inline SVG plots) and papers
// (statement, in the style of Henderson et al. 2020 and Lacoste et al. 2019).
//
// Everything here is a pure function of the jobs and Options passed in: no
// Redis, no clock, no network. The API serves GET /v1/report and the /report
// page with [ParseOptions], [Select], [Build] and [Render]; the CLI prints what
// the API returns.
//
// Figures carry how they were obtained ([Figure.Basis], [Figure.Sources]),
// emissions are kept per carbon signal (average and marginal intensities are
// never added together), and human formats show three significant figures,
// with "≈" in front of anything not wholly measured.
package report
