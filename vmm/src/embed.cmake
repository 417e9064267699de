# Writes a C source holding the bytes of IN as array NAME (cmake -DIN=.. -DOUT=.. -DNAME=.. -P).
file(READ "${IN}" hex HEX)
string(LENGTH "${hex}" n)
math(EXPR bytes "${n} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," body "${hex}")
string(REGEX REPLACE "((0x..,){16})" "\\1\n    " body "${body}")
file(WRITE "${OUT}" "/* generated from ${IN}; do not edit */\n"
  "const unsigned char ${NAME}[] = {\n    ${body}\n};\n"
  "const unsigned int ${NAME}_len = ${bytes};\n")
