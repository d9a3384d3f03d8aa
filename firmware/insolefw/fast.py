# Byte-level kernels compiled to machine code with the viper emitter (xtensawin on the
# ESP32, x64 on the unix port). They take buffers plus offsets and lengths rather than
# slices, because slicing a memoryview allocates.
import micropython


@micropython.viper
def crc16(buf, start: int, end: int) -> int:
    # CRC-16/CCITT-FALSE: poly 0x1021, init 0xFFFF, no reflection, no final xor.
    p = ptr8(buf)
    crc = 0xFFFF
    i = start
    while i < end:
        crc ^= p[i] << 8
        for _ in range(8):
            if crc & 0x8000:
                crc = ((crc << 1) ^ 0x1021) & 0xFFFF
            else:
                crc = (crc << 1) & 0xFFFF
        i += 1
    return crc


@micropython.viper
def cobs_encode(src, n: int, dst) -> int:
    # Encodes src[0:n] into dst (needs n + n // 254 + 1 bytes) and returns the length.
    # No trailing delimiter is written.
    s = ptr8(src)
    d = ptr8(dst)
    code_at = 0
    out = 1
    code = 1
    i = 0
    while i < n:
        b = s[i]
        if b == 0:
            d[code_at] = code
            code_at = out
            out += 1
            code = 1
        else:
            d[out] = b
            out += 1
            code += 1
            if code == 0xFF:
                d[code_at] = code
                code_at = out
                out += 1
                code = 1
        i += 1
    d[code_at] = code
    return out


@micropython.viper
def cobs_decode(buf, n: int) -> int:
    # Decodes buf[0:n] in place (decoding never grows). Returns the decoded length,
    # or -1 if the frame is not valid COBS (a zero byte or a code past the end).
    p = ptr8(buf)
    i = 0
    out = 0
    while i < n:
        code = p[i]
        if code == 0:
            return -1
        i += 1
        end = i + code - 1
        if end > n:
            return -1
        while i < end:
            b = p[i]
            if b == 0:
                return -1
            p[out] = b
            out += 1
            i += 1
        if code < 0xFF and i < n:
            p[out] = 0
            out += 1
    return out


@micropython.viper
def copy_bytes(dst, dst_off: int, src, src_off: int, n: int):
    d = ptr8(dst)
    s = ptr8(src)
    i = 0
    while i < n:
        d[dst_off + i] = s[src_off + i]
        i += 1


@micropython.viper
def find_byte(buf, start: int, end: int, value: int) -> int:
    # Index of the first `value` in buf[start:end], or -1.
    p = ptr8(buf)
    i = start
    while i < end:
        if p[i] == value:
            return i
        i += 1
    return -1
