// Package zones maps cloud region names (AWS, GCP, Azure) to the grid zones
// the forecast providers know: Electricity Maps zone ids and WattTime
// region codes. The built-in table can be overridden in config; an unknown
// region is an error naming it, never a silent default.
package zones
