;; Hostile: grows memory 1 MiB at a time until refused, then aborts the way
;; a Rust guest does when an allocation fails. The host must cap memory and
;; report the memory limit, not a generic crash.
(module
  (memory (export "memory") 1)
  (func (export "erasure_abi_version") (result i32) (i32.const 1))
  ;; Input goes to 1024; test inputs are small.
  (func (export "alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "evaluate") (param i32 i32) (result i64)
    (block $refused
      (loop $more
        (br_if $refused (i32.eq (memory.grow (i32.const 16)) (i32.const -1)))
        (br $more)))
    unreachable))
