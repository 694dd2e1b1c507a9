;; A well-behaved ABI v1 rule module written by hand, without the SDK.
;;
;; For every record it answers
;;   {"action":"retain","until":"2099-01-01T00:00:00Z","basis":"hand-written WAT module"}
;; It counts records by counting the byte sequence `"table":` in the input,
;; which occurs once per record as long as no config, request or attrs
;; object has a key named "table" (escaped quotes inside strings never
;; match). If it miscounts, the host rejects the answer: that is the point.
;;
;; Memory layout: constants in page 0, input at 65536 (alloc), output right
;; after the input. Memory grows as needed; if it cannot, the module traps.
(module
  (memory (export "memory") 2)

  (data (i32.const 0) "{\"decisions\":[")  ;; 14 bytes
  (data (i32.const 16) "]}")               ;; 2 bytes
  (data (i32.const 32) "\"table\":")       ;; 8 bytes: the record marker, one i64
  (data (i32.const 64)
    "{\"action\":\"retain\",\"until\":\"2099-01-01T00:00:00Z\",\"basis\":\"hand-written WAT module\"}")
  ;; that decision is 84 bytes long

  (func (export "erasure_abi_version") (result i32)
    (i32.const 1))

  ;; Make [0, end) addressable, growing memory if needed.
  (func $ensure (param $end i64)
    (local $pages i64)
    (local.set $pages
      (i64.shr_u (i64.add (local.get $end) (i64.const 65535)) (i64.const 16)))
    (if (i64.gt_u (local.get $pages) (i64.extend_i32_u (memory.size)))
      (then
        (if (i32.eq
              (memory.grow
                (i32.wrap_i64
                  (i64.sub (local.get $pages) (i64.extend_i32_u (memory.size)))))
              (i32.const -1))
          (then unreachable)))))

  ;; The input always goes to 65536; one call at a time.
  (func (export "alloc") (param $len i32) (result i32)
    (call $ensure
      (i64.add (i64.const 65536) (i64.extend_i32_u (local.get $len))))
    (i32.const 65536))

  (func (export "evaluate") (param $ptr i32) (param $len i32) (result i64)
    (local $i i32)
    (local $end i32)
    (local $count i32)
    (local $out i32)
    (local $w i32)
    (local $k i32)

    ;; Count `"table":` in the input.
    (local.set $end (i32.add (local.get $ptr) (local.get $len)))
    (local.set $i (local.get $ptr))
    (block $scanned
      (loop $scan
        (br_if $scanned
          (i32.gt_u (i32.add (local.get $i) (i32.const 8)) (local.get $end)))
        (if (i64.eq (i64.load (local.get $i)) (i64.load (i32.const 32)))
          (then (local.set $count (i32.add (local.get $count) (i32.const 1)))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $scan)))

    ;; Output: prefix, count decisions separated by commas, suffix.
    (local.set $out (local.get $end))
    (call $ensure
      (i64.add
        (i64.extend_i32_u (local.get $out))
        (i64.add (i64.const 16)
          (i64.mul (i64.extend_i32_u (local.get $count)) (i64.const 85)))))
    (memory.copy (local.get $out) (i32.const 0) (i32.const 14))
    (local.set $w (i32.add (local.get $out) (i32.const 14)))
    (block $written
      (loop $emit
        (br_if $written (i32.ge_u (local.get $k) (local.get $count)))
        (if (local.get $k)
          (then
            (i32.store8 (local.get $w) (i32.const 44)) ;; ','
            (local.set $w (i32.add (local.get $w) (i32.const 1)))))
        (memory.copy (local.get $w) (i32.const 64) (i32.const 84))
        (local.set $w (i32.add (local.get $w) (i32.const 84)))
        (local.set $k (i32.add (local.get $k) (i32.const 1)))
        (br $emit)))
    (memory.copy (local.get $w) (i32.const 16) (i32.const 2))
    (local.set $w (i32.add (local.get $w) (i32.const 2)))

    ;; (pointer << 32) | length
    (i64.or
      (i64.shl (i64.extend_i32_u (local.get $out)) (i64.const 32))
      (i64.extend_i32_u (i32.sub (local.get $w) (local.get $out))))))
