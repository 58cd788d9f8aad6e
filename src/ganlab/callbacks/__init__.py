"""Lightning callbacks whose schedules count the loop's iterations, never Lightning's global_step."""
