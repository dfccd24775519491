package policy

// PlanFallback plans with only the capacity fallback: the reservation
// earliest deadline first, then, with improve, the improvement passes.
func PlanFallback(in Input, improve bool) Result {
	return planWith(in, planOpts{fallbackOnly: true, noImprove: !improve})
}

// PlanNoRepair plans without the repair step.
func PlanNoRepair(in Input) Result {
	return planWith(in, planOpts{noRepair: true})
}

// PlanNoPrune plans searching every allowed region for every job, without
// skipping those whose bound cannot beat the best so far.
func PlanNoPrune(in Input) Result {
	return planWith(in, planOpts{noPrune: true})
}
