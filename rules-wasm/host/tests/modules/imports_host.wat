;; Hostile: wants a host function. Refused at installation like any import.
(module
  (import "env" "erasure_log" (func $log (param i32 i32)))
  (memory (export "memory") 1)
  (func (export "erasure_abi_version") (result i32) (i32.const 1))
  ;; Input goes to 1024; test inputs are small.
  (func (export "alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "evaluate") (param i32 i32) (result i64)
    (call $log (local.get 0) (local.get 1))
    (i64.const 0)))
