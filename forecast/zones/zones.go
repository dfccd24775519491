package zones

import (
	"fmt"
	"sort"
	"strings"

	"github.com/greenq/greenq"
)

// Zone is where a cloud region draws its power, in each provider's naming.
// An empty field means the table does not know that provider's name.
type Zone struct {
	ElectricityMaps string `json:"electricitymaps,omitempty" yaml:"electricitymaps,omitempty"`
	WattTime        string `json:"watttime,omitempty" yaml:"watttime,omitempty"`
}

// For returns the zone name provider (electricitymaps, watttime, or any
// provider keyed by Electricity Maps ids: carbonaware, file) uses.
func (z Zone) For(provider string) (string, error) {
	name := z.ElectricityMaps
	if provider == "watttime" {
		name = z.WattTime
	}
	if name == "" {
		return "", fmt.Errorf("no %s zone known", provider)
	}
	return name, nil
}

// builtin pairs cloud regions with grid zones. The pairing is by the data
// centre's location and its grid operator; WattTime codes only where the
// region's balancing authority is certain.
var builtin = map[string]Zone{
	// AWS
	"us-east-1":      {"US-MIDA-PJM", "PJM_DC"},
	"us-east-2":      {"US-MIDA-PJM", ""},
	"us-west-1":      {"US-CAL-CISO", "CAISO_NORTH"},
	"us-west-2":      {"US-NW-BPAT", "BPA"},
	"ca-central-1":   {"CA-QC", ""},
	"eu-west-1":      {"IE", "IE"},
	"eu-west-2":      {"GB", "UK"},
	"eu-west-3":      {"FR", "FR"},
	"eu-central-1":   {"DE", "DE"},
	"eu-central-2":   {"CH", ""},
	"eu-north-1":     {"SE-SE3", ""},
	"eu-south-1":     {"IT-NO", ""},
	"eu-south-2":     {"ES", ""},
	"ap-northeast-1": {"JP-TK", ""},
	"ap-northeast-2": {"KR", ""},
	"ap-northeast-3": {"JP-KN", ""},
	"ap-southeast-1": {"SG", ""},
	"ap-southeast-2": {"AU-NSW", "NEM_NSW"},
	"ap-southeast-4": {"AU-VIC", "NEM_VIC"},
	"ap-south-1":     {"IN-WE", ""},
	"ap-east-1":      {"HK", ""},
	"sa-east-1":      {"BR-CS", ""},
	"af-south-1":     {"ZA", ""},
	// GCP
	"us-central1":             {"US-MIDW-MISO", ""},
	"us-east1":                {"US-CAR-SC", ""},
	"us-east4":                {"US-MIDA-PJM", "PJM_DC"},
	"us-west1":                {"US-NW-BPAT", "BPA"},
	"us-west2":                {"US-CAL-LDWP", ""},
	"us-west3":                {"US-NW-PACE", ""},
	"us-west4":                {"US-NW-NEVP", ""},
	"us-south1":               {"US-TEX-ERCO", ""},
	"northamerica-northeast1": {"CA-QC", ""},
	"northamerica-northeast2": {"CA-ON", ""},
	"europe-west1":            {"BE", ""},
	"europe-west2":            {"GB", "UK"},
	"europe-west3":            {"DE", "DE"},
	"europe-west4":            {"NL", ""},
	"europe-west6":            {"CH", ""},
	"europe-west9":            {"FR", "FR"},
	"europe-north1":           {"FI", ""},
	"europe-central2":         {"PL", ""},
	"europe-southwest1":       {"ES", ""},
	"asia-northeast1":         {"JP-TK", ""},
	"asia-northeast3":         {"KR", ""},
	"asia-southeast1":         {"SG", ""},
	"asia-south1":             {"IN-WE", ""},
	"australia-southeast1":    {"AU-NSW", "NEM_NSW"},
	"australia-southeast2":    {"AU-VIC", "NEM_VIC"},
	"southamerica-east1":      {"BR-CS", ""},
	// Azure
	"eastus":             {"US-MIDA-PJM", "PJM_DC"},
	"eastus2":            {"US-MIDA-PJM", "PJM_DC"},
	"westus":             {"US-CAL-CISO", "CAISO_NORTH"},
	"westus2":            {"US-NW-GCPD", ""},
	"westus3":            {"US-SW-AZPS", ""},
	"centralus":          {"US-MIDW-MISO", ""},
	"southcentralus":     {"US-TEX-ERCO", ""},
	"canadacentral":      {"CA-ON", ""},
	"canadaeast":         {"CA-QC", ""},
	"northeurope":        {"IE", "IE"},
	"westeurope":         {"NL", ""},
	"uksouth":            {"GB", "UK"},
	"ukwest":             {"GB", "UK"},
	"francecentral":      {"FR", "FR"},
	"germanywestcentral": {"DE", "DE"},
	"swedencentral":      {"SE-SE3", ""},
	"norwayeast":         {"NO-NO1", ""},
	"switzerlandnorth":   {"CH", ""},
	"japaneast":          {"JP-TK", ""},
	"koreacentral":       {"KR", ""},
	"southeastasia":      {"SG", ""},
	"australiaeast":      {"AU-NSW", "NEM_NSW"},
	"centralindia":       {"IN-WE", ""},
	"brazilsouth":        {"BR-CS", ""},
	"southafricanorth":   {"ZA", ""},
}

// Lookup returns the built-in zone of a cloud region (case-insensitive).
func Lookup(cloudRegion string) (Zone, bool) {
	z, ok := builtin[strings.ToLower(strings.TrimSpace(cloudRegion))]
	return z, ok
}

// Regions returns the cloud regions the built-in table knows, sorted.
func Regions() []string {
	out := make([]string, 0, len(builtin))
	for r := range builtin {
		out = append(out, r)
	}
	sort.Strings(out)
	return out
}

// Table is the built-in mapping with config overrides on top.
type Table struct {
	overrides map[string]Zone
}

// NewTable returns a Table where overrides (cloud region → zone, e.g. from
// greenq.yaml) replace the built-in entries field by field: an override
// that sets only WattTime keeps the built-in Electricity Maps zone.
func NewTable(overrides map[string]Zone) *Table {
	t := &Table{overrides: make(map[string]Zone, len(overrides))}
	for r, z := range overrides {
		t.overrides[strings.ToLower(strings.TrimSpace(r))] = z
	}
	return t
}

// Lookup returns cloudRegion's zone; an unknown region is a
// greenq.CodeInvalidArgument error naming it.
func (t *Table) Lookup(cloudRegion string) (Zone, error) {
	key := strings.ToLower(strings.TrimSpace(cloudRegion))
	z, known := builtin[key]
	if o, ok := t.overrides[key]; ok {
		known = true
		if o.ElectricityMaps != "" {
			z.ElectricityMaps = o.ElectricityMaps
		}
		if o.WattTime != "" {
			z.WattTime = o.WattTime
		}
	}
	if !known {
		return Zone{}, greenq.Invalid("zone", "cloud region %q is not in greenq's zone table; set its zone in config", cloudRegion)
	}
	return z, nil
}

// ZoneFor returns the zone name provider uses for cloudRegion, with an
// error naming the region when the table has none.
func (t *Table) ZoneFor(cloudRegion, provider string) (string, error) {
	z, err := t.Lookup(cloudRegion)
	if err != nil {
		return "", err
	}
	name, err := z.For(provider)
	if err != nil {
		return "", greenq.Invalid("zone", "cloud region %q: %v; set its zone in config", cloudRegion, err)
	}
	return name, nil
}
