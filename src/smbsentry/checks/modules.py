"""The ids of the Shadow Brokers modules judged by checks/shadowbrokers.py, in table order.

A module of its own so that the arsenal view (report/arsenal.py) can read the
list without importing the checks.
"""

MODULES = ("eclipsedwing", "educatedscholar", "emeraldthread", "erraticgopher", "zippybeer", "esteemaudit",
           "explodingcan", "eskimoroll", "englishmansdentist", "emphasismine", "ewokfrenzy", "easypi", "easybee")
