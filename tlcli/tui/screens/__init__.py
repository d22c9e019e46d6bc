"""Screens: one run (`run`), a folder of runs (`runs`), two runs overlaid (`compare`), keys (`help`)."""
