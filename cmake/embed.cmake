# cmake -DIN=file -DOUT=header -P embed.cmake
# Writes `static const char actor__child_py[]` holding IN's bytes and a NUL.
file(READ "${IN}" hex HEX)
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," body "${hex}")
file(WRITE "${OUT}" "/* generated from ${IN}; do not edit */\nstatic const char actor__child_py[] = {${body}0x00};\n")
