/* budget_int.h: the CPU clock every recipe keeps its budget in, and the one
 * wording of "the CPU budget cannot cover feature extraction"
 * (notEnoughBudget) for every recipe, so users see the same minimum and
 * suggestion whichever kind of model they train. */
#ifndef VFS_ENGINE_BUDGET_INT_H
#define VFS_ENGINE_BUDGET_INT_H

#include "core.h"

/* Feature-extraction estimates are extrapolated from a measured rate (the
 * detector: the images extracted so far; the classifier: seconds per GFLOP
 * times the cheapest backbone's GFLOP). An estimate is raised by this margin
 * before it is quoted as the minimum (and, in the detector, before it is
 * held against the budget), because the cost per image varies with image
 * size and machine load; one margin so every recipe quotes alike. */
#define BUDGET_MARGIN 1.15

/* Fails d with ENG_ENOBUDGET: budget_s CPU seconds cannot cover extracting
 * the features of nimages images through backbone `source` (NULL: not
 * named), estimated at need_s CPU seconds. The message gives the minimum
 * (need_s, in minutes rounded up to 0.01) and a suggested budget (4 x
 * need_s, whole minutes, at least 1). Returns ENG_ENOBUDGET. */
eng_status budget_fail_features(eng_diag *d, double budget_s, int nimages, const char *source,
                                double need_s);

/* This process's CPU time in seconds, the clock every budget is kept in. */
double budget_cpu_now(void);

#endif
