/* crashloop - notice an agent that keeps killing the daemon.
 *
 * In thread mode a plugin's fatal signal takes a2ad down. The signal
 * handler (runner.c) appends the agent's name to <db>.crashes; at the next
 * start this module moves those lines into the agent_crashes table of the
 * database and disables (runner_disable) every agent with [workers]
 * crash_loop_max crashes within crash_loop_window_s, with one error line:
 * its jobs then fail at once instead of crashing the daemon at every start.
 */
#ifndef A2AD_CRASHLOOP_H
#define A2AD_CRASHLOOP_H

/* Thread: main, in store_recover, before any job runs. */
void crashloop_check(const char *db_path);

#endif
