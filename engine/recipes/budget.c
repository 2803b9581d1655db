/* budget.c: the notEnoughBudget message shared by the recipes (see
 * budget_int.h), and the CPU clock budgets are kept in. Design: the caller estimates the cost from
 * what it measured; this file only turns it into the minimum and the suggestion. */
#include "budget_int.h"

#include <math.h>
#include <time.h>

eng_status budget_fail_features(eng_diag *d, double budget_s, int nimages, const char *source,
                                double need_s)
{
    double min_minutes = ceil(need_s / 60.0 * 100) / 100;
    if (min_minutes < 0.01)
        min_minutes = 0.01;
    double suggest = ceil(need_s * 4 / 60.0);
    if (suggest < 1)
        suggest = 1;
    return eng_fail(d, ENG_ENOBUDGET,
                    "a budget of %.3f CPU minutes cannot cover feature extraction: %d images%s%s "
                    "need about %.1f CPU seconds; minimum %.2f minutes, suggested %.0f minutes "
                    "(budget_minutes)",
                    budget_s / 60.0, nimages, source ? " through " : "", source ? source : "",
                    need_s, min_minutes, suggest);
}

double budget_cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}
