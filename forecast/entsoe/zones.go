package entsoe

import (
	"regexp"
	"strings"
)

// biddingZones maps zone names (Electricity Maps' ids where they differ from
// ENTSO-E's, and ENTSO-E's bidding-zone names) to Energy Identification
// Codes, as the Transparency Platform's API guide lists them (copied from
// EnergieID/entsoe-py entsoe/mappings.py, Area). A region's zone may also be
// an EIC itself.
var biddingZones = map[string]string{
	"AT": "10YAT-APG------L", "BE": "10YBE----------2", "BG": "10YCA-BULGARIA-R",
	"CH": "10YCH-SWISSGRIDZ", "CZ": "10YCZ-CEPS-----N",
	"DE": "10Y1001A1001A82H", "DE-LU": "10Y1001A1001A82H", "DE_LU": "10Y1001A1001A82H",
	"DK-DK1": "10YDK-1--------W", "DK_1": "10YDK-1--------W", "DK-DK2": "10YDK-2--------M", "DK_2": "10YDK-2--------M",
	"EE": "10Y1001A1001A39I", "ES": "10YES-REE------0", "FI": "10YFI-1--------U", "FR": "10YFR-RTE------C",
	"GR": "10YGR-HTSO-----Y", "HR": "10YHR-HEP------M", "HU": "10YHU-MAVIR----U",
	"IE": "10Y1001A1001A59C", "IE_SEM": "10Y1001A1001A59C",
	"IT-NO": "10Y1001A1001A73I", "IT_NORD": "10Y1001A1001A73I", "IT-CNO": "10Y1001A1001A70O", "IT_CNOR": "10Y1001A1001A70O",
	"IT-CSO": "10Y1001A1001A71M", "IT_CSUD": "10Y1001A1001A71M", "IT-SO": "10Y1001A1001A788", "IT_SUD": "10Y1001A1001A788",
	"IT-SIC": "10Y1001A1001A75E", "IT_SICI": "10Y1001A1001A75E", "IT-SAR": "10Y1001A1001A74G", "IT_SARD": "10Y1001A1001A74G",
	"LT": "10YLT-1001A0008Q", "LV": "10YLV-1001A00074", "NL": "10YNL----------L",
	"NO-NO1": "10YNO-1--------2", "NO_1": "10YNO-1--------2", "NO-NO2": "10YNO-2--------T", "NO_2": "10YNO-2--------T",
	"NO-NO3": "10YNO-3--------J", "NO_3": "10YNO-3--------J", "NO-NO4": "10YNO-4--------9", "NO_4": "10YNO-4--------9",
	"NO-NO5": "10Y1001A1001A48H", "NO_5": "10Y1001A1001A48H",
	"PL": "10YPL-AREA-----S", "PT": "10YPT-REN------W", "RO": "10YRO-TEL------P", "RS": "10YCS-SERBIATSOV",
	"SE-SE1": "10Y1001A1001A44P", "SE_1": "10Y1001A1001A44P", "SE-SE2": "10Y1001A1001A45N", "SE_2": "10Y1001A1001A45N",
	"SE-SE3": "10Y1001A1001A46L", "SE_3": "10Y1001A1001A46L", "SE-SE4": "10Y1001A1001A47J", "SE_4": "10Y1001A1001A47J",
	"SI": "10YSI-ELES-----O", "SK": "10YSK-SEPS-----K",
}

// eic matches an Energy Identification Code: 16 characters, a check
// character last.
var eic = regexp.MustCompile(`^[0-9]{2}[A-Z0-9-]{13}[A-Z0-9-]$`)

// ZoneEIC returns the EIC of zone: the zone itself when it is one, else the
// code of a known bidding-zone name (case-insensitive).
func ZoneEIC(zone string) (string, bool) {
	z := strings.TrimSpace(zone)
	if eic.MatchString(z) {
		return z, true
	}
	code, ok := biddingZones[strings.ToUpper(z)]
	return code, ok
}
