package backtest_test

import (
	"context"
	"fmt"
	"os"

	"github.com/greenq/greenq/policy/backtest"
)

func ExampleParseCapacity() {
	c, err := backtest.ParseCapacity("GB=8,US-CAL-CISO=16")
	fmt.Println(c["GB"], c["US-CAL-CISO"], err)
	// Output: 8 16 <nil>
}

// Run back-tests a workload and prints the table `greenq simulate` shows.
func ExampleRun() {
	res, err := backtest.Run(context.Background(), backtest.Config{
		CarbonDir:    "testdata/carbon",
		WorkloadFile: "testdata/workload.csv",
	}, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	_ = res.WriteTable(os.Stdout)
	_ = backtest.WritePlacements(os.Stdout, res.Placements)
}
