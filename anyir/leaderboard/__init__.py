"""anyir.leaderboard"""
