"""What the tests share: fake servers, private services, processes, records, workbooks."""
